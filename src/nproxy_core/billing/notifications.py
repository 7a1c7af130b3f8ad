"""Processor notifications (webhooks and status answers): verified, recorded, applied once.

A payment flagged for review stays flagged: from then on only an admin's resolve activates it
(DESIGN 4.9), even when a clean ``finished`` arrives later. A new problem reported after an
admin resolved it (a status change, another processor payment) puts it back in the queue.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.alerts import AlertKind, IAlertNotifier
from nproxy_core.audit import SYSTEM
from nproxy_core.billing.activation import activate_payment, end_cycle_for_refund, is_activated
from nproxy_core.billing.models import (
    NotificationSource,
    Payment,
    PaymentNotification,
    PaymentState,
)
from nproxy_core.billing.plan import Plan
from nproxy_core.db import utcnow
from nproxy_core.plugins import PaymentEvent, PaymentProcessor
from nproxy_core.templating import money

log = logging.getLogger(__name__)

# Statuses only move up this order; a later notification of a lower rank (a replay, or one
# that arrived out of order) is recorded and ignored. ``refunded`` only follows ``finished``.
# A late ``finished`` after ``expired``/``failed`` is still money received, so it ranks higher.
_RANK: dict[PaymentState, int] = {
    PaymentState.CREATED: 0,
    PaymentState.WAITING: 1,
    PaymentState.CONFIRMING: 2,
    PaymentState.CONFIRMED: 3,
    PaymentState.SENDING: 4,
    PaymentState.EXPIRED: 5,
    PaymentState.FAILED: 5,
    PaymentState.PARTIALLY_PAID: 6,
    PaymentState.FINISHED: 7,
    PaymentState.REFUNDED: 8,
}


def status_may_change(old: PaymentState, new: PaymentState) -> bool:
    if new == PaymentState.REFUNDED:
        return old == PaymentState.FINISHED
    return _RANK[new] > _RANK[old]


@dataclass(frozen=True)
class Outcome:
    """What one notification did: ``activated``, ``updated``, ``unchanged``, ``ignored``,
    ``refunded``, ``review`` or ``unknown_order``; ``review`` says why an admin must look."""

    result: str
    review: str | None = None


def _mismatches(payment: Payment, event: PaymentEvent, *, strict: bool) -> list[str]:
    """Where the event disagrees with the order. ``strict``: missing fields count too."""
    problems: list[str] = []
    if event.amount is None:
        if strict:
            problems.append("amount missing")
    elif event.amount != payment.amount:  # Decimal equality: 9.990 == 9.99, nothing rounded
        got, wanted = format(event.amount, "f"), money(payment.amount)
        problems.append(f"amount {got} instead of {wanted}")
    if event.currency is None:
        if strict:
            problems.append("currency missing")
    elif event.currency.strip().upper() != payment.currency.upper():
        problems.append(f"currency {event.currency[:16]} instead of {payment.currency}")
    if payment.invoice_id is not None:
        if event.invoice_id is None:
            if strict:
                problems.append("invoice id missing")
        elif event.invoice_id != payment.invoice_id:
            problems.append(f"invoice {event.invoice_id[:40]} instead of {payment.invoice_id}")
    return problems


def _decide(
    db: Session,
    plan: Plan,
    payment: Payment | None,
    processor: str,
    event: PaymentEvent,
    now: dt.datetime,
) -> Outcome:
    if payment is None:
        return Outcome("unknown_order", "notification for an unknown order")
    if payment.processor != processor:
        reason = f"notification from {processor} for a {payment.processor} payment"
        payment.flag_for_review(reason)
        return Outcome("review", reason)
    if event.parent_payment_id is not None:
        # A re-deposit is a separate payment about this order: a person decides what it buys.
        reason = f"re-deposit (parent payment {event.parent_payment_id[:40]})"
        payment.flag_for_review(reason)
        return Outcome("review", reason)

    notes: list[str] = []
    if event.payment_id is not None:
        if payment.processor_payment_id is None:
            payment.processor_payment_id = event.payment_id[:128]
        elif payment.processor_payment_id != event.payment_id:
            notes.append(f"another processor payment ({event.payment_id[:40]}) for this order")
    new = PaymentState(str(event.status))
    mismatches = _mismatches(payment, event, strict=new == PaymentState.FINISHED)
    problems = mismatches + notes
    review = "; ".join(problems)[:255] or None
    if review:
        payment.flag_for_review(review)

    old = payment.status
    if new == old:
        return Outcome("unchanged", review)
    if not status_may_change(old, new):
        if new == PaymentState.REFUNDED:
            reason = f"refund notification for a payment that was {old}"
            payment.flag_for_review(reason)
            return Outcome("review", reason)
        return Outcome("ignored", review)

    payment.status = new
    if new == PaymentState.FINISHED:
        if mismatches:
            return Outcome("review", review)
        if payment.needs_review:
            if is_activated(db, payment):
                return Outcome("updated", review)  # an admin activated it already
            # Flagged before (partial, mismatch, re-deposit…): a clean finish does not
            # overrule that; an admin decides.
            reason = "; ".join(
                [f"finished after it was flagged for review ({payment.review_reason})", *notes]
            )[:255]
            return Outcome("review", reason)
        activate_payment(db, plan, payment, now)
        return Outcome("activated", review)
    if new == PaymentState.PARTIALLY_PAID:
        reason = "; ".join(["partially paid", *problems])[:255]
        payment.flag_for_review(reason)
        return Outcome("review", reason)
    if new == PaymentState.REFUNDED:
        end_cycle_for_refund(db, payment, now)
        return Outcome("refunded", review)
    return Outcome("updated", review)


def payment_subject(payment_id: int) -> str:
    """The subject of a ``payment_flagged`` alert about a known payment."""
    return f"payment {payment_id}"


def apply_event(
    db: Session,
    plan: Plan,
    processor: str,
    event: PaymentEvent,
    *,
    source: NotificationSource,
    now: dt.datetime | None = None,
    alerts: IAlertNotifier | None = None,
) -> Outcome:
    """Record a verified notification and apply it, idempotently; a notification that needs
    review raises a ``payment_flagged`` alert with ``alerts``, sent if this transaction commits.

    The payment row is locked for the whole decision (SELECT ... FOR UPDATE), so duplicates
    arriving together are applied one after the other and activate at most one cycle (or pack
    balance); the unique ``billing_cycles.payment_id`` and ``pack_balances.payment_id`` back
    that up.
    """
    now = now or utcnow()
    payment = None
    if event.order_id:
        payment = db.scalar(
            sa.select(Payment)
            .where(Payment.order_id == event.order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    status_before = None if payment is None else payment.status
    news = payment is not None and _is_news(db, payment, event, status_before)
    outcome = _decide(db, plan, payment, processor, event, now)
    if (
        payment is not None
        and outcome.review is not None
        and payment.resolved_at is not None
        and news
    ):
        _reopen(db, payment, outcome.review)
    db.add(
        PaymentNotification(
            payment_id=None if payment is None else payment.id,
            processor=processor[:64],
            source=source,
            order_id=None if event.order_id is None else event.order_id[:64],
            status=str(event.status),
            processor_payment_id=None if event.payment_id is None else event.payment_id[:128],
            raw=dict(event.raw),
            result=outcome.result,
            needs_review=outcome.review is not None,
            detail=outcome.review,
            received_at=now,
        )
    )
    db.flush()
    if outcome.review is not None:
        log.warning(
            "%s notification for order %s needs review: %s",
            processor,
            event.order_id,
            outcome.review,
        )
        if alerts is not None:
            subject = (
                payment_subject(payment.id) if payment is not None else f"order {event.order_id}"
            )
            alerts.raise_alert(
                AlertKind.PAYMENT_FLAGGED,
                subject[:200],
                f"{processor} notification ({event.status}) needs review: {outcome.review}",
                db=db,
            )
    return outcome


def _is_news(
    db: Session, payment: Payment, event: PaymentEvent, status_before: PaymentState | None
) -> bool:
    """Whether a notification tells something new: a status the payment has not had yet, or a
    processor payment not seen before for it. Replays and duplicates are not news."""
    if event.payment_id is not None:
        seen = db.scalar(
            sa.select(PaymentNotification.id)
            .where(
                PaymentNotification.payment_id == payment.id,
                PaymentNotification.processor_payment_id == event.payment_id[:128],
            )
            .limit(1)
        )
        if seen is None:
            return True
    try:
        new = PaymentState(str(event.status))
    except ValueError:
        return False
    return status_before is not None and new != status_before


def _reopen(db: Session, payment: Payment, reason: str) -> None:
    before = {
        "resolution": None if payment.resolution is None else str(payment.resolution),
        "resolved_by": payment.resolved_by,
        "review_reason": payment.review_reason,
    }
    payment.reopen_review(reason)
    SYSTEM.record(
        db,
        "payment.review_reopened",
        "payment",
        payment.id,
        before,
        {"review_reason": payment.review_reason, "status": str(payment.status)},
    )


def receive_notification(
    db: Session,
    plan: Plan,
    processor: PaymentProcessor,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: dt.datetime | None = None,
    alerts: IAlertNotifier | None = None,
) -> Outcome:
    """Verify a webhook with its processor, then record and apply it.

    Raises :class:`~nproxy_core.plugins.WebhookRejected` before anything is written.
    """
    event = processor.parse_webhook(body, headers)
    return apply_event(
        db, plan, processor.name, event, source=NotificationSource.WEBHOOK, now=now, alerts=alerts
    )
