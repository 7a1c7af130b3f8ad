"""Where the customer bot meets Telegram Stars payments (:mod:`nproxy_core.billing.stars`
with the ``stars`` payment plugin) and referrals (:mod:`nproxy_core.referrals`).

Invoices, pre-checkout answers and activations are billing's own services, called on a
request of their own in a thread; the ``stars`` processor (found through the plugin registry,
never imported) talks to the Bot API. Without the ``stars`` processor enabled nothing is sold
for Stars here, and a pre-checkout query is refused, so no Star is taken for something that
could not be activated.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pyramid.request import Request

from nproxy_core.alerts import IAlertNotifier
from nproxy_core.billing import stars as billing_stars
from nproxy_core.billing.interfaces import IPlan
from nproxy_core.billing.models import CreditPack, Payment, PaymentState, Plan
from nproxy_core.customerbot import services
from nproxy_core.customerbot.services import Refused, TelegramUser
from nproxy_core.customerbot.texts import text
from nproxy_core.errors import ValidationError
from nproxy_core.i18n import localize
from nproxy_core.i18n.localizers import catalog_localizer
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import PaymentProcessorError
from nproxy_core.referrals import services as referrals

if TYPE_CHECKING:
    import telegram

    from nproxy_core.customerbot.bot import CustomerBot

log = logging.getLogger(__name__)

PROCESSOR = "stars"


def processor(request: Request) -> Any:
    return request.find_service(IPlugins).processor(PROCESSOR)


# --- referrals ---------------------------------------------------------------------------------


def record_referral(request: Request, who: TelegramUser, code: str) -> bool:
    """Record that the account just made for ``who`` came through ``code``; a bad or own code
    changes nothing (the account stays made)."""
    customer = services.find_customer(request.db, who.id)
    try:
        referrals.record_referral(request.db, customer.user_id, code, via="telegram")
    except referrals.ReferralRefused as refused:
        log.info("referral not recorded: %s", refused)
        return False
    return True


def invite_link(request: Request, who: TelegramUser, bot_username: str) -> str | None:
    if not bot_username:
        return None
    customer = services.find_customer(request.db, who.id)
    code = referrals.code_for(request.db, customer.user_id)
    return referrals.links(code, public_url="", bot_username=bot_username)["telegram"]


# --- Stars -------------------------------------------------------------------------------------


def _item(db: Any, kind: str, code: str) -> Plan | CreditPack:
    model = {"plan": Plan, "pack": CreditPack}.get(kind)
    if model is None:
        raise Refused("button_bad")
    item = db.scalar(
        sa.select(model).where(model.code == code, model.active.is_(True), model.public.is_(True))
    )
    if item is None or not item.price_stars:
        raise Refused("button_bad")
    return item


async def send_invoice(bot: CustomerBot, who: TelegramUser, arg: str) -> None:
    """An invoice in Stars for the plan or pack ``arg`` (``plan:CODE`` / ``pack:CODE``).

    The order is committed first and the invoice sent after, so a payment made at once finds
    its order; an invoice Telegram refused leaves the order failed (never payable)."""
    kind, _, code = arg.partition(":")
    # The invoice's title and description, and a refusal, in the customer's language.
    localizer = catalog_localizer(await bot.speaks(who.id))

    def order(request: Request) -> tuple[int, dict[str, Any]] | None:
        stars = processor(request)
        if stars is None:
            return None
        customer = services.find_customer(request.db, who.id)
        item = _item(request.db, kind, code)
        payment, fields = billing_stars.start_stars_checkout(
            request.db, item, stars, customer.user_id, link=False, localizer=localizer
        )
        return payment.id, fields

    try:
        made = await bot.work(order)
    except ValidationError as error:
        await bot.bot.send_message(who.chat_id, localize(localizer, error.message))
        return
    if made is None:
        await bot.say(who.chat_id, "stars_unavailable")
        return
    payment_id, fields = made

    def send(request: Request) -> bool:
        try:
            processor(request).send_invoice(who.chat_id, fields)
        except PaymentProcessorError as error:
            log.warning("Telegram refused the invoice of payment %s: %s", payment_id, error)
            payment = request.db.get(Payment, payment_id)
            if payment is not None and payment.status == PaymentState.WAITING:
                payment.status = PaymentState.FAILED
            return False
        return True

    if not await bot.work(send):
        await bot.say(who.chat_id, "invoice_refused")


async def pre_checkout(bot: CustomerBot, query: telegram.PreCheckoutQuery) -> None:
    """Answered within Telegram's 10 s: ok only while the order is still payable."""
    data = {
        "id": query.id,
        "currency": query.currency,
        "total_amount": query.total_amount,
        "invoice_payload": query.invoice_payload,
    }

    def answer(request: Request) -> bool:
        stars = processor(request)
        if stars is None:
            return False
        billing_stars.answer_pre_checkout(request.db, stars, data)
        return True

    if not await bot.work(answer):
        await query.answer(ok=False, error_message=text("stars_unavailable"))


async def successful_payment(
    bot: CustomerBot, who: TelegramUser, message: telegram.Message
) -> None:
    """Activate what the payment paid for, once: a repeated update changes nothing."""
    paid = message.successful_payment
    data = {
        "from": {"id": who.id},
        "successful_payment": {
            "currency": paid.currency,
            "total_amount": paid.total_amount,
            "invoice_payload": paid.invoice_payload,
            "telegram_payment_charge_id": paid.telegram_payment_charge_id,
        },
    }

    def apply(request: Request) -> str:
        stars = processor(request)
        if stars is None:
            log.error("a Stars payment arrived but the stars processor is not enabled")
            return "unavailable"
        outcome = billing_stars.apply_successful_payment(
            request.db,
            request.find_service(IPlan),
            stars,
            data,
            alerts=request.find_service(IAlertNotifier),
        )
        return outcome.result

    try:
        result = await bot.work(apply)
    except ValidationError as error:
        log.warning("a successful_payment was refused: %s", error.message)
        return
    if result == "activated":
        await bot.say(who.chat_id, "paid")
    elif result == "review":
        await bot.say(who.chat_id, "paid_review")
