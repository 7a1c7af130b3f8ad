"""The seam between the customer bot and two features written alongside it: Telegram Stars
payments (``nproxy_core.billing.stars`` with the ``stars`` payment plugin) and referrals
(``nproxy_core.referrals``).

Each function here uses that feature when it is installed and otherwise does the safe thing:
no invoice is sent and a pre-checkout query is refused (so no Star is ever taken for
something we could not activate), a referral is not recorded, and /invite says invitations
are not available yet. When those features land, only this module changes.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pyramid.request import Request

from nproxy_core.customerbot import services
from nproxy_core.customerbot.services import TelegramUser

if TYPE_CHECKING:
    import telegram

    from nproxy_core.customerbot.bot import CustomerBot

log = logging.getLogger(__name__)

NOT_AVAILABLE = "Payments in Telegram Stars are not available yet. Please pay on the web."


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _billing_stars() -> ModuleType | None:
    return _module("nproxy_core.billing.stars")


def _referrals() -> ModuleType | None:
    return _module("nproxy_core.referrals")


def available() -> bool:
    """Whether Stars invoices can be sent and their payments activated here."""
    module = _billing_stars()
    return module is not None and hasattr(module, "send_invoice")


# --- referrals ---------------------------------------------------------------------------------


def record_referral(request: Request, who: TelegramUser, code: str) -> bool:
    """Record that the account just made for ``who`` came through ``code``."""
    module = _referrals()
    record = getattr(module, "record_referral", None)
    if record is None:
        log.info("a referral code was given, but referrals are not installed")
        return False
    customer = services.find_customer(request.db, who.id)
    try:
        return bool(record(request.db, customer.user_id, code))
    except Exception:
        # A bad or own code changes nothing; the account stays made.
        log.info("referral code refused", exc_info=True)
        return False


def invite_link(request: Request, who: TelegramUser, bot_username: str) -> str | None:
    module = _referrals()
    code_for = getattr(module, "code_for", None) or getattr(module, "referral_code", None)
    if code_for is None or not bot_username:
        return None
    customer = services.find_customer(request.db, who.id)
    code = code_for(request.db, customer.user_id)
    return f"https://t.me/{bot_username}?start=ref_{code}"


# --- Stars -------------------------------------------------------------------------------------


async def send_invoice(bot: CustomerBot, who: TelegramUser, arg: str) -> None:
    module = _billing_stars()
    if module is None or not hasattr(module, "send_invoice"):
        await bot.bot.send_message(who.chat_id, NOT_AVAILABLE)
        return
    await module.send_invoice(bot, who, arg)


async def pre_checkout(bot: CustomerBot, query: telegram.PreCheckoutQuery) -> None:
    module = _billing_stars()
    if module is None or not hasattr(module, "pre_checkout"):
        await query.answer(ok=False, error_message=NOT_AVAILABLE)
        return
    await module.pre_checkout(bot, query)


async def successful_payment(bot: CustomerBot, who: TelegramUser, paid: Any) -> None:
    module = _billing_stars()
    if module is None or not hasattr(module, "successful_payment"):
        # Never reached while pre_checkout refuses; logged so an operator can refund.
        log.error("a Stars payment arrived but Stars payments are not installed")
        await bot.bot.send_message(who.chat_id, NOT_AVAILABLE)
        return
    await module.successful_payment(bot, who, paid)
