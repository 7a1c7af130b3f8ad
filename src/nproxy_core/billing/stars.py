"""Telegram Stars (DESIGN 4.14): the invoices the customers' bot sends, its answer to
``pre_checkout_query`` and the one activation of each ``successful_payment``.

The customers' bot calls these with the updates Telegram gives it; the ``stars`` payment plugin
(found through its entry point, never imported) talks to the Bot API. A payment is applied by
the path every processor shares (:func:`nproxy_core.billing.subscriptions.apply`): activation,
review of a mismatch, the referral reward and refunds are the same as for any other payment.

Each Telegram charge is recorded once (``star_charges.charge_id`` is unique): a replayed
``successful_payment`` finds its charge and changes nothing, also when both copies arrive at
the same moment (the payment's row is locked first, and the unique key backs that up).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pyramid.i18n import Localizer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from nproxy_core.billing import subscriptions
from nproxy_core.billing.checkout import _terms, describe, new_order_id
from nproxy_core.billing.models import CreditPack, NotificationSource, Payment, PaymentState
from nproxy_core.billing.models import Plan as PlanRow
from nproxy_core.billing.notifications import Outcome
from nproxy_core.billing.plan import Plan
from nproxy_core.db import Base, utcnow
from nproxy_core.errors import ValidationError
from nproxy_core.i18n import _
from nproxy_core.i18n.fields import localized
from nproxy_core.plugins import CheckoutRequest, PaymentProcessor, PaymentProcessorError

log = logging.getLogger(__name__)

__all__ = [
    "ORDER_VALID",
    "STARS",
    "PreCheckoutAnswer",
    "StarCharge",
    "answer_pre_checkout",
    "apply_successful_payment",
    "charge_of",
    "check_pre_checkout",
    "start_stars_checkout",
]

#: Telegram Stars' currency code.
STARS = "XTR"
#: How long an unpaid Stars order may still be paid (an invoice link never expires itself).
ORDER_VALID = dt.timedelta(hours=24)
_PAYABLE = (PaymentState.CREATED, PaymentState.WAITING)


class StarCharge(Base):
    """One Telegram Stars charge (``telegram_payment_charge_id``), recorded once, with the
    payer's Telegram user id that a refund (``refundStarPayment``) needs."""

    __tablename__ = "star_charges"

    id: Mapped[int] = mapped_column(primary_key=True)
    charge_id: Mapped[str] = mapped_column(sa.String(128), unique=True)
    #: The payment it paid; none when its payload named no order of ours.
    payment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="SET NULL"), index=True
    )
    telegram_user_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    amount: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def charge_of(db: Session, payment_id: int) -> StarCharge | None:
    """The (first) charge that paid a payment."""
    return db.scalar(
        sa.select(StarCharge)
        .where(StarCharge.payment_id == payment_id)
        .order_by(StarCharge.id)
        .limit(1)
    )


# --- invoices ------------------------------------------------------------------------------


def start_stars_checkout(
    db: Session,
    item: PlanRow | CreditPack,
    processor: PaymentProcessor,
    user_id: int,
    *,
    link: bool = True,
    localizer: Localizer | None = None,
) -> tuple[Payment, dict[str, Any]]:
    """Record a payment of ``item`` in Stars (its ``price_stars``) and make its invoice.

    Returns the payment and the invoice's fields (``title``, ``description``, ``payload`` =
    the order id, ``currency`` XTR, ``prices``, an empty ``provider_token``), which the bot
    sends with ``sendInvoice``. With ``link`` the invoice is also made a link
    (``createInvoiceLink``, the payment's ``checkout_url``) that the web can offer; should
    Telegram refuse it, the payment is kept as ``failed`` (as any checkout the processor
    refused) and ValidationError says why.
    """
    stars = item.price_stars
    if stars is None or stars <= 0:
        if isinstance(item, CreditPack):
            message = _(
                "The pack '${code}' is not sold for Telegram Stars.", mapping={"code": item.code}
            )
        else:
            message = _(
                "The plan '${code}' is not sold for Telegram Stars.", mapping={"code": item.code}
            )
        raise ValidationError(message)
    if not item.active:
        raise ValidationError(_("${name} is not on sale.", mapping={"name": item.name}))
    payment = Payment(
        order_id=new_order_id(),
        user_id=user_id,
        processor=processor.name,
        amount=Decimal(stars),
        currency=STARS,
        status=PaymentState.CREATED,
        **_terms(item),
    )
    db.add(payment)
    db.flush()
    # Its title and description in the buyer's language (``localizer``'s, else English).
    description = describe(item, localizer)
    invoice = getattr(processor, "invoice", None)
    if invoice is None:
        raise ValidationError(
            _("${name} does not sell for Telegram Stars.", mapping={"name": processor.name})
        )
    title = localized(item, "name", localizer)
    fields = invoice(payment.order_id, title, description, stars)
    if link:
        try:
            hosted = processor.create_checkout(
                CheckoutRequest(
                    order_id=payment.order_id,
                    amount=Decimal(stars),
                    currency=STARS,
                    description=description,
                    callback_url="",
                    success_url="",
                    cancel_url="",
                )
            )
        except PaymentProcessorError as exc:
            log.warning("Stars invoice link failed for payment %s: %s", payment.id, exc)
            payment.status = PaymentState.FAILED
            raise ValidationError(
                _("Telegram did not make the invoice; please try again.")
            ) from None
        payment.checkout_url = hosted.checkout_url
    payment.status = PaymentState.WAITING
    return payment, fields


# --- pre_checkout_query ---------------------------------------------------------------------


@dataclass(frozen=True)
class PreCheckoutAnswer:
    """What the bot answers with ``answerPreCheckoutQuery``."""

    ok: bool
    error_message: str | None = None


def check_pre_checkout(
    db: Session, query: Mapping[str, Any], *, now: dt.datetime | None = None
) -> PreCheckoutAnswer:
    """Whether the order a ``pre_checkout_query`` names may be paid now: it exists, is a
    Stars order still waiting for its money (not paid, refunded, failed, flagged or older than
    :data:`ORDER_VALID`), and the query's currency and amount are the order's. One read by
    the unique order id; nothing is written, so a repeated query gets the same answer."""
    now = now or utcnow()
    payload = query.get("invoice_payload") if isinstance(query, Mapping) else None
    if not isinstance(payload, str) or not payload or len(payload) > 64:
        return PreCheckoutAnswer(False, "This invoice names no order of ours.")
    payment = db.scalar(sa.select(Payment).where(Payment.order_id == payload))
    if payment is None or payment.currency != STARS:
        return PreCheckoutAnswer(False, "This invoice names no Telegram Stars order of ours.")
    if payment.status in (PaymentState.FINISHED, PaymentState.REFUNDED):
        return PreCheckoutAnswer(False, "This order is already paid. Use /buy for a new one.")
    if payment.status not in _PAYABLE or payment.needs_review:
        return PreCheckoutAnswer(False, "This order can no longer be paid. Use /buy for a new one.")
    created = payment.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    if created + ORDER_VALID < now:
        return PreCheckoutAnswer(False, "This order has expired. Use /buy for a new one.")
    currency = query.get("currency")
    if not isinstance(currency, str) or currency.upper() != STARS:
        return PreCheckoutAnswer(False, f"This order is paid in Telegram Stars, not {currency}.")
    total = query.get("total_amount")
    price = int(payment.amount)
    if isinstance(total, bool) or not isinstance(total, int) or total != price:
        return PreCheckoutAnswer(False, f"This order costs {price} Stars, not {total}.")
    return PreCheckoutAnswer(True)


def answer_pre_checkout(
    db: Session,
    processor: PaymentProcessor,
    query: Mapping[str, Any],
    *,
    now: dt.datetime | None = None,
) -> PreCheckoutAnswer:
    """Check the query (:func:`check_pre_checkout`) and answer Telegram with the plugin."""
    answer = check_pre_checkout(db, query, now=now)
    processor.answer_pre_checkout_query(str(query.get("id")), answer.ok, answer.error_message)
    return answer


# --- successful_payment --------------------------------------------------------------------


def apply_successful_payment(
    db: Session,
    plan: Plan,
    processor: PaymentProcessor,
    message: Mapping[str, Any],
    *,
    alerts: Any = None,
    now: dt.datetime | None = None,
) -> Outcome:
    """Apply a ``message`` with ``successful_payment`` once: the first copy of a charge
    activates what its order paid for (or sends it to review: another amount or currency, a
    second charge for one order); any later copy changes nothing (``unchanged``).

    Raises ValidationError naming the problem for a message that is no payment.
    """
    to_event = getattr(processor, "payment_event", None)
    if to_event is None:
        raise ValidationError(f"{processor.name} reads no Telegram payments.")
    try:
        event = to_event({"message": message})
    except ValueError as exc:
        raise ValidationError(f"Not a Telegram payment: {exc}") from None
    charge_id = str(event.payment_id)[:128]
    payment_id = db.scalar(
        sa.select(Payment.id)
        .where(Payment.order_id == (event.order_id or "")[:64])
        .with_for_update()
    )
    if _charge_known(db, charge_id):
        return Outcome("unchanged")
    payer = message.get("from") if isinstance(message, Mapping) else None
    payer_id = payer.get("id") if isinstance(payer, Mapping) else None
    try:
        with db.begin_nested():
            db.add(
                StarCharge(
                    charge_id=charge_id,
                    payment_id=payment_id,
                    telegram_user_id=payer_id if isinstance(payer_id, int) else None,
                    amount=int(event.amount or 0),
                    created_at=now or utcnow(),
                )
            )
    except IntegrityError:
        # The same charge recorded meanwhile by another copy of the update.
        return Outcome("unchanged")
    return subscriptions.apply(
        db, plan, processor.name, event, source=NotificationSource.WEBHOOK, alerts=alerts, now=now
    )


def _charge_known(db: Session, charge_id: str) -> bool:
    return db.scalar(sa.select(StarCharge.id).where(StarCharge.charge_id == charge_id)) is not None
