"""Billing rules: checkout, applying processor notifications, activating and ending cycles,
reconciliation, expiry warnings, and the subscription summary the account pages show."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from pyramid.request import Request
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.accounts.interfaces import ISubscriptionSummary
from nproxy_core.accounts.models import User
from nproxy_core.audit import Surface, record
from nproxy_core.billing.cycles import Span, schedule_paid_cycle
from nproxy_core.billing.interfaces import IPlan
from nproxy_core.billing.models import (
    OPEN_STATES,
    BillingCycle,
    NotificationSource,
    Payment,
    PaymentNotification,
    PaymentState,
)
from nproxy_core.billing.plan import Plan
from nproxy_core.config import public_url
from nproxy_core.db import utcnow
from nproxy_core.notifications import send_email
from nproxy_core.plugins import (
    CheckoutRequest,
    PaymentEvent,
    PaymentProcessor,
    PaymentProcessorError,
)
from nproxy_core.quota.services import bucket, current_cycle

log = logging.getLogger(__name__)


def new_order_id() -> str:
    """Our reference for a payment: 144 random bits, URL-safe."""
    return secrets.token_urlsafe(18)


def isoformat(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")


# --- checkout ------------------------------------------------------------------------------


def start_checkout(
    db: Session,
    plan: Plan,
    processor: PaymentProcessor,
    user_id: int,
    *,
    callback_url: str,
    return_urls: Callable[[str], tuple[str, str]],
) -> Payment:
    """Record a payment for the plan, then ask the processor for a hosted checkout.

    The row exists (with its order id) before the processor hears of it, so any notification
    can be matched. If the processor fails, the payment is kept as ``failed`` with no
    ``checkout_url``: should the invoice exist after all (a timeout), a later notification
    still finds its order.
    """
    payment = Payment(
        order_id=new_order_id(),
        user_id=user_id,
        processor=processor.name,
        amount=plan.price,
        currency=plan.currency,
        status=PaymentState.CREATED,
    )
    db.add(payment)
    db.flush()
    success_url, cancel_url = return_urls(payment.order_id)
    months = "month" if plan.period_months == 1 else f"{plan.period_months} months"
    try:
        hosted = processor.create_checkout(
            CheckoutRequest(
                order_id=payment.order_id,
                amount=plan.price,
                currency=plan.currency,
                description=f"nproxy {plan.name} plan ({months})",
                callback_url=callback_url,
                success_url=success_url,
                cancel_url=cancel_url,
            )
        )
    except PaymentProcessorError as exc:
        log.warning("checkout with %s failed for payment %s: %s", processor.name, payment.id, exc)
        payment.status = PaymentState.FAILED
        return payment
    payment.checkout_url = hosted.checkout_url
    payment.invoice_id = None if hosted.invoice_id is None else str(hosted.invoice_id)[:128]
    payment.status = PaymentState.WAITING
    return payment


# --- notifications -------------------------------------------------------------------------

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
        problems.append(f"amount {event.amount} instead of {payment.amount.normalize()}")
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
        activate_cycle(db, plan, payment.user_id, now, payment=payment)
        return Outcome("activated", review)
    if new == PaymentState.PARTIALLY_PAID:
        reason = "; ".join(["partially paid", *problems])[:255]
        payment.flag_for_review(reason)
        return Outcome("review", reason)
    if new == PaymentState.REFUNDED:
        end_cycle_for_refund(db, payment, now)
        return Outcome("refunded", review)
    return Outcome("updated", review)


def apply_event(
    db: Session,
    plan: Plan,
    processor: str,
    event: PaymentEvent,
    *,
    source: NotificationSource,
    now: dt.datetime | None = None,
) -> Outcome:
    """Record a verified notification and apply it, idempotently.

    The payment row is locked for the whole decision (SELECT ... FOR UPDATE), so duplicates
    arriving together are applied one after the other and activate at most one cycle; the
    unique ``billing_cycles.payment_id`` backs that up.
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
    outcome = _decide(db, plan, payment, processor, event, now)
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
    return outcome


def receive_notification(
    db: Session,
    plan: Plan,
    processor: PaymentProcessor,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: dt.datetime | None = None,
) -> Outcome:
    """Verify a webhook with its processor, then record and apply it.

    Raises :class:`~nproxy_core.plugins.WebhookRejected` before anything is written.
    """
    event = processor.parse_webhook(body, headers)
    return apply_event(db, plan, processor.name, event, source=NotificationSource.WEBHOOK, now=now)


# --- cycles ----------------------------------------------------------------------------------


def activate_cycle(
    db: Session,
    plan: Plan,
    user_id: int,
    now: dt.datetime | None = None,
    *,
    payment: Payment | None = None,
) -> BillingCycle:
    """Grant one cycle of the plan, placed by :func:`schedule_paid_cycle`.

    Also the way for admins to grant a cycle without a payment.
    """
    now = now or utcnow()
    if payment is not None and payment.cycle is not None:
        return payment.cycle
    # One activation per user at a time: two payments confirmed together must not both
    # start at the same "end of the latest cycle".
    db.execute(sa.select(User.id).where(User.id == user_id).with_for_update())
    cycles = db.scalars(
        sa.select(BillingCycle)
        .where(BillingCycle.user_id == user_id, BillingCycle.ends_at > now)
        .order_by(BillingCycle.starts_at, BillingCycle.id)
        .execution_options(populate_existing=True)
    ).all()
    spans = [
        Span(c.starts_at, c.ends_at, c.period_months, exhausted=c.remaining <= 0) for c in cycles
    ]
    moved, new = schedule_paid_cycle(now, spans, plan.period_months)
    for cycle, span in zip(cycles, moved, strict=True):
        cycle.starts_at, cycle.ends_at = span.starts_at, span.ends_at
    cycle = BillingCycle(
        user_id=user_id,
        starts_at=new.starts_at,
        ends_at=new.ends_at,
        period_months=new.months,
        request_limit=plan.request_limit,
        payment=payment,
        created_at=now,
    )
    db.add(cycle)
    db.flush()
    log.info("activated billing cycle %s for user %s", cycle.id, user_id)
    return cycle


def end_cycle_for_refund(db: Session, payment: Payment, now: dt.datetime) -> None:
    """A refunded payment takes its cycle back from now on; an audit row says so."""
    cycle = payment.cycle
    if cycle is None:
        record(
            db,
            actor="system",
            surface=Surface.SYSTEM,
            action="billing.payment_refunded",
            target_type="payment",
            target_id=payment.id,
            after={"order_id": payment.order_id, "status": str(payment.status)},
        )
        return
    before = {"starts_at": isoformat(cycle.starts_at), "ends_at": isoformat(cycle.ends_at)}
    # A cycle not started yet shrinks to nothing rather than ending before it begins.
    cycle.ends_at = max(cycle.starts_at, min(cycle.ends_at, now))
    record(
        db,
        actor="system",
        surface=Surface.SYSTEM,
        action="billing.cycle_ended_by_refund",
        target_type="billing_cycle",
        target_id=cycle.id,
        before=before,
        after={
            "starts_at": isoformat(cycle.starts_at),
            "ends_at": isoformat(cycle.ends_at),
            "payment_order_id": payment.order_id,
        },
    )


# --- what users see --------------------------------------------------------------------------


def subscription_summary(db: Session, user_id: int, now: dt.datetime | None = None) -> dict:
    """``{"subscription": {"status", "current_period_end"}, "quota": {"bucket"}}``; no counts."""
    now = now or utcnow()
    cycle = current_cycle(db, user_id, now)
    if cycle is not None:
        return {
            "subscription": {"status": "active", "current_period_end": isoformat(cycle.ends_at)},
            "quota": {"bucket": bucket(cycle.remaining, cycle.request_limit)},
        }
    last_end = db.scalar(
        sa.select(sa.func.max(BillingCycle.ends_at)).where(
            BillingCycle.user_id == user_id, BillingCycle.ends_at <= now
        )
    )
    status = "none" if last_end is None else "expired"
    return {
        "subscription": {"status": status, "current_period_end": isoformat(last_end)},
        "quota": {"bucket": 0},
    }


@implementer(ISubscriptionSummary)
class BillingSummary:
    """The real subscription state for the dashboard and ``/api/v1/me``."""

    def summary(self, request: Any, user: Any) -> dict[str, Any]:
        return subscription_summary(request.db, user.id)


def user_payments(db: Session, user_id: int) -> list[Payment]:
    return list(
        db.scalars(
            sa.select(Payment)
            .where(Payment.user_id == user_id)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
        )
    )


def payment_json(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.order_id,
        "status": str(payment.status),
        "amount": format(payment.amount.normalize(), "f"),
        "currency": payment.currency,
        "created_at": isoformat(payment.created_at),
        "under_review": payment.needs_review,
    }


# --- periodic work ---------------------------------------------------------------------------

#: Older open payments are left to admins: the processor has long given up on them.
RECONCILE_WINDOW = dt.timedelta(days=14)


def reconcile_open_payments(
    db: Session,
    plan: Plan,
    processors: Mapping[str, PaymentProcessor],
    *,
    now: dt.datetime | None = None,
    limit: int = 500,
) -> dict[str, int]:
    """Ask the processors about open payments, so a lost webhook still activates.

    Only payments whose processor payment id is known can be asked about: NOWPayments tells
    it only through an IPN, so an invoice whose every IPN was lost stays open (known gap).
    """
    now = now or utcnow()
    rows = db.execute(
        sa.select(Payment.order_id, Payment.processor, Payment.processor_payment_id)
        .where(
            Payment.status.in_(OPEN_STATES),
            Payment.processor_payment_id.is_not(None),
            Payment.created_at > now - RECONCILE_WINDOW,
        )
        .order_by(Payment.id)
        .limit(limit)
    ).all()
    counts = {"checked": 0, "failed": 0}
    for order_id, name, processor_payment_id in rows:
        processor = processors.get(name)
        if processor is None:
            continue
        try:
            event = processor.fetch_status(processor_payment_id)
        except PaymentProcessorError as exc:
            counts["failed"] += 1
            log.warning("reconciliation: %s payment %s: %s", name, order_id, exc)
            continue
        if event.order_id is None:
            # The status answer came for the payment id we learned from this order.
            event = replace(event, order_id=order_id)
        try:
            with db.begin_nested():
                outcome = apply_event(
                    db, plan, name, event, source=NotificationSource.RECONCILIATION, now=now
                )
        except Exception:
            counts["failed"] += 1
            log.exception("reconciliation: could not apply %s payment %s", name, order_id)
            continue
        counts["checked"] += 1
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return counts


WARNINGS = (
    ("1d", dt.timedelta(days=1), "warned_1d_at", "tomorrow"),
    ("3d", dt.timedelta(days=3), "warned_3d_at", "in 3 days"),
)


def send_expiry_warnings(request: Request, now: dt.datetime | None = None) -> int:
    """Email users whose cycle ends within 3 days, then within 1 day: once each.

    A cycle already followed by a renewal gets no warning (its flags are still set). When the
    job first sees a cycle already inside the last day, only the 1-day warning goes out.
    """
    db: Session = request.db
    now = now or utcnow()
    cycles = db.scalars(
        sa.select(BillingCycle)
        .where(
            BillingCycle.starts_at <= now,
            BillingCycle.ends_at > now,
            BillingCycle.ends_at <= now + dt.timedelta(days=3),
            sa.or_(BillingCycle.warned_3d_at.is_(None), BillingCycle.warned_1d_at.is_(None)),
        )
        .order_by(BillingCycle.id)
        .with_for_update(skip_locked=True)
    ).all()
    sent = 0
    for cycle in cycles:
        left = cycle.ends_at - now
        kind, _, flag, when = next(w for w in WARNINGS if left <= w[1])
        if getattr(cycle, flag) is not None:
            continue
        cycle.warned_3d_at = cycle.warned_3d_at or now
        if kind == "1d":
            cycle.warned_1d_at = now
        renewed = db.scalar(
            sa.select(sa.func.count())
            .select_from(BillingCycle)
            .where(
                BillingCycle.user_id == cycle.user_id,
                BillingCycle.id != cycle.id,
                BillingCycle.starts_at <= cycle.ends_at,
                BillingCycle.ends_at > cycle.ends_at,
            )
        )
        user = cycle.user
        if renewed or user.is_blocked:
            continue
        ends = cycle.ends_at.strftime("%Y-%m-%d %H:%M UTC")
        pricing = public_url(request, "pricing")
        plan = request.find_service(IPlan)
        send_email(
            request,
            user.email,
            f"Your nproxy plan ends {when}",
            f"Your nproxy {plan.name} plan ends on {ends}. After that, new images cannot be "
            "started until you renew.\n\n"
            f"Renew here: {pricing}\n\n"
            "Renewing early loses no days: the new period starts when the current one ends.\n",
        )
        sent += 1
    return sent
