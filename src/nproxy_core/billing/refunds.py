"""An admin's refund of a payment, from the web admin or the admin bot (one service, audited).

The money goes back through the payment's processor when its plugin can send it
(``refund_payment``: Telegram Stars' ``refundStarPayment``); then the refund is applied by the
path every processor's refund notification takes (:func:`nproxy_core.billing.subscriptions.
apply`): the cycle ends from now on (queued cycles move up) or the pack's unused units are
taken back, and a referral reward it earned is clawed back. A processor whose plugin cannot
refund is refused with a message saying where to refund instead: its own refund notification
does the rest when it arrives.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.accounts.models import User
from nproxy_core.audit import Actor
from nproxy_core.billing import subscriptions
from nproxy_core.billing.models import (
    NotificationSource,
    Payment,
    PaymentNotification,
    PaymentState,
)
from nproxy_core.billing.plan import Plan
from nproxy_core.billing.review import clean_note, payment_view
from nproxy_core.billing.stars import StarCharge
from nproxy_core.db import utcnow
from nproxy_core.errors import Conflict, NotFound, ValidationError
from nproxy_core.plugins import EventKind, PaymentEvent, PaymentProcessorError, PaymentStatus

__all__ = ["can_refund", "refund_payment"]


def can_refund(processor: Any) -> bool:
    """Whether a processor's plugin sends refunds itself."""
    return bool(getattr(processor, "refunds", False)) and callable(
        getattr(processor, "refund_payment", None)
    )


def _customer_from_notifications(
    db: Session, processor: Any, payment: Payment, reference: str
) -> str | None:
    """The payer as the processor's recorded notification of this money names them (a payment
    whose update was handed on over HTTP has no charge row), if the plugin can read it."""
    customer_of = getattr(processor, "customer_of", None)
    if customer_of is None:
        return None
    raws = db.scalars(
        sa.select(PaymentNotification.raw)
        .where(
            PaymentNotification.payment_id == payment.id,
            PaymentNotification.processor_payment_id == reference[:128],
        )
        .order_by(PaymentNotification.id)
    )
    for raw in raws:
        found = customer_of(raw or {})
        if found:
            return str(found)
    return None


def refund_payment(
    db: Session,
    plan: Plan,
    plugins: Any,
    payment_id: int,
    *,
    actor: Actor,
    note: Any = "",
    now: dt.datetime | None = None,
) -> Payment:
    """Refund a finished payment through its processor and take back what it gave.

    Refused, with nothing changed: an unknown payment (NotFound), one not finished (Conflict:
    not paid yet, or refunded already), one whose processor is not enabled or cannot refund,
    and one the processor refuses to refund (ValidationError with its reason).
    """
    now = now or utcnow()
    note = clean_note(note)
    # The user first, then the payment: the order every refund notification takes.
    owner = db.scalar(sa.select(Payment.user_id).where(Payment.id == payment_id))
    if owner is not None:
        db.execute(sa.select(User.id).where(User.id == owner).with_for_update())
    payment = db.scalar(
        sa.select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if payment is None:
        raise NotFound(f"no payment with id {payment_id}")
    if payment.status == PaymentState.REFUNDED:
        raise Conflict(f"payment {payment.id} was refunded already")
    if payment.status != PaymentState.FINISHED:
        raise Conflict(f"payment {payment.id} is {payment.status}: only a paid payment is refunded")
    processor = plugins.processor(payment.processor)
    if processor is None:
        raise ValidationError(
            f"payment {payment.id} was made with {payment.processor}, which is not enabled here"
        )
    if not can_refund(processor):
        name = getattr(processor, "display_name", "") or payment.processor
        raise ValidationError(
            f"{name} payments are refunded in {name}'s own dashboard; its refund notification "
            "then ends what the payment gave"
        )
    charge = db.scalar(
        sa.select(StarCharge).where(StarCharge.payment_id == payment.id).order_by(StarCharge.id)
    )
    reference = charge.charge_id if charge is not None else payment.processor_payment_id
    customer = None
    if charge is not None and charge.telegram_user_id is not None:
        customer = str(charge.telegram_user_id)
    elif reference:
        customer = _customer_from_notifications(db, processor, payment, reference)
    if not reference:
        raise ValidationError(f"payment {payment.id} has no processor reference to refund")
    before = payment_view(payment)
    try:
        processor.refund_payment(reference, customer)
    except PaymentProcessorError as exc:
        raise ValidationError(f"the refund was refused: {exc}") from None
    event = PaymentEvent(
        order_id=payment.order_id,
        status=PaymentStatus.REFUNDED,
        amount=None,
        currency=None,
        kind=EventKind.REFUND,
        raw={"refunded_by": actor.name, "surface": str(actor.surface), "note": note},
    )
    subscriptions.apply(
        db, plan, payment.processor, event, source=NotificationSource.RECONCILIATION, now=now
    )
    db.flush()
    actor.record(
        db,
        "payment.refund",
        "payment",
        payment.id,
        before,
        {**payment_view(payment), "note": note, "processor_reference": reference},
    )
    return payment
