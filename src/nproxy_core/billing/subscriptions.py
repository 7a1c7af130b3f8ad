"""Renewals (DESIGN 4.16): the one path every payment processor that renews by itself uses.

A processor with the renewal capability (``PaymentProcessor.recurring``) sends, besides the
payment of a checkout, events about its subscriptions (:class:`EventKind`). Here they become:

- a **subscription row** per processor subscription, made from the checkout that started it
  (found by the order id the processor keeps with it), with that checkout's terms;
- a **renewal**: each renewal invoice makes one payment of the subscription (unique by invoice
  id), applied like any payment (``notifications.apply_event``): paid, it grants one cycle that
  starts where the user's last cycle ends (DESIGN 4.2); an amount or currency that is not the
  subscription's sends it to the review queue; refunded first, it never activates;
- a **failed renewal** emails the user (a link to fix the card) and alerts the admins, once per
  invoice; the subscription is past due until a renewal is paid;
- **cancelled at period end** or **ended**: nothing more renews; the paid cycles run to their
  ends. An older report of the subscription's state never overrides a newer one, and an ended
  subscription stays ended;
- a **refund** finds its payment by the references the processor gives and ends that payment's
  cycle (or takes back a pack's unused units).

Every event is recorded (``payment_notifications``). One about a subscription or customer
nobody knows is recorded, flagged for review and never activates anything.

Locks, always in this order: the user the event is about (found without locking first), the
checkout's payment, the subscription, a renewal's payment, then (in activation) the user's
cycles. Duplicates arriving together wait for each other, and
``uq_payments_subscription_id_invoice_id`` backs up one payment per invoice.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.accounts.models import User
from nproxy_core.alerts import AlertKind, IAlertNotifier
from nproxy_core.audit import SYSTEM, Actor
from nproxy_core.billing.activation import end_cycle_for_refund
from nproxy_core.billing.checkout import new_order_id
from nproxy_core.billing.models import (
    BillingCycle,
    NotificationSource,
    Payment,
    PaymentNotification,
    PaymentState,
    Subscription,
    SubscriptionState,
)
from nproxy_core.billing.models import Plan as PlanRow
from nproxy_core.billing.notifications import Outcome, apply_event
from nproxy_core.billing.plan import Plan
from nproxy_core.billing.presenters import isoformat
from nproxy_core.db import utcnow
from nproxy_core.errors import Conflict, NotFound
from nproxy_core.i18n import _
from nproxy_core.i18n.fields import localized
from nproxy_core.plugins import (
    EventKind,
    PaymentEvent,
    PaymentProcessor,
    PaymentProcessorError,
    PaymentStatus,
    SubscriptionInfo,
)
from nproxy_core.templating import money

log = logging.getLogger(__name__)

__all__ = [
    "apply",
    "cancel_renewal",
    "ensure_subscription",
    "reconcile_subscriptions",
    "renewing_subscription",
    "subscription_view",
]

#: How final a state is: at the same moment, the more final report wins.
_FINALITY = {
    SubscriptionState.ACTIVE: 0,
    SubscriptionState.PAST_DUE: 1,
    SubscriptionState.ENDING: 2,
    SubscriptionState.ENDED: 3,
}
#: Reconciliation asks about a renewing subscription from this long before its period ends.
RENEWAL_DUE = dt.timedelta(hours=1)


def subscription_subject(subscription: Subscription) -> str:
    """The subject of the admins' alerts about one subscription."""
    return f"subscription {subscription.id}"


# --- the subscription row ------------------------------------------------------------------


def _locked(db: Session, processor: str, external_id: str) -> Subscription | None:
    return db.scalar(
        sa.select(Subscription)
        .where(Subscription.processor == processor, Subscription.external_id == external_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def ensure_subscription(
    db: Session, processor: str, info: SubscriptionInfo, now: dt.datetime
) -> Subscription | None:
    """The subscription ``info`` is about, locked; made from the checkout that started it (its
    order, which must be a plan's payment with this processor) when first heard of. None when
    neither the subscription nor its checkout is known."""
    external_id = (info.subscription_id or "")[:128]
    if not external_id:
        return None
    subscription = _locked(db, processor, external_id)
    if subscription is None and info.order_id:
        checkout = db.scalar(
            sa.select(Payment)
            .where(Payment.order_id == info.order_id[:64])
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if checkout is None or checkout.processor != processor or checkout.plan_id is None:
            return None
        # Another delivery may have made it while this one waited for the checkout's lock.
        subscription = _locked(db, processor, external_id)
        if subscription is None:
            subscription = _start(db, processor, external_id, checkout, now)
        if checkout.subscription_id is None:
            checkout.subscription_id = subscription.id
    if subscription is None:
        return None
    if info.customer_id and not subscription.customer_id:
        subscription.customer_id = info.customer_id[:128]
    if info.initial_invoice_id and not subscription.initial_invoice_id:
        subscription.initial_invoice_id = info.initial_invoice_id[:128]
    if info.current_period_end is not None and (
        subscription.current_period_end is None
        or info.current_period_end > subscription.current_period_end
    ):
        subscription.current_period_end = info.current_period_end
    _report_state(db, subscription, info, now)
    return subscription


def _start(
    db: Session, processor: str, external_id: str, checkout: Payment, now: dt.datetime
) -> Subscription:
    plan = db.get(PlanRow, checkout.plan_id)
    assert plan is not None
    subscription = Subscription(
        user_id=checkout.user_id,
        processor=processor,
        external_id=external_id,
        order_id=checkout.order_id,
        plan_id=plan.id,
        amount=checkout.amount,
        currency=checkout.currency,
        units=checkout.plan_units or plan.units,
        period_months=checkout.plan_period_months or plan.period_months,
        state=SubscriptionState.ACTIVE,
        created_at=now,
    )
    db.add(subscription)
    db.flush()
    SYSTEM.record(
        db,
        "billing.subscription_started",
        "subscription",
        subscription.id,
        after=_view(subscription),
    )
    return subscription


def _view(subscription: Subscription) -> dict[str, Any]:
    return {
        "processor": subscription.processor,
        "external_id": subscription.external_id,
        "user_id": subscription.user_id,
        "order_id": subscription.order_id,
        "plan_id": subscription.plan_id,
        "amount": money(subscription.amount),
        "currency": subscription.currency,
        "state": str(subscription.state),
        "current_period_end": isoformat(subscription.current_period_end),
    }


def _new_state(info: SubscriptionInfo) -> SubscriptionState | None:
    if info.ended:
        return SubscriptionState.ENDED
    if info.renews is False:
        return SubscriptionState.ENDING
    if info.status in ("past_due", "unpaid"):
        return SubscriptionState.PAST_DUE
    if info.renews:
        return SubscriptionState.ACTIVE
    return None


def _report_state(
    db: Session, subscription: Subscription, info: SubscriptionInfo, now: dt.datetime
) -> None:
    new = _new_state(info)
    if new is not None:
        _set_state(db, subscription, new, info.as_of or now, now)


def _set_state(
    db: Session,
    subscription: Subscription,
    new: SubscriptionState,
    as_of: dt.datetime,
    now: dt.datetime,
) -> bool:
    """Move to ``new`` as reported at ``as_of``, unless a newer (or at the same moment, a more
    final) report is already applied, or the subscription ended."""
    old = subscription.state
    if old == SubscriptionState.ENDED and new != SubscriptionState.ENDED:
        return False
    if subscription.state_at is not None:
        if as_of < subscription.state_at:
            return False
        if as_of == subscription.state_at and _FINALITY[new] < _FINALITY[old]:
            return False
    subscription.state_at = as_of
    if new == old:
        return False
    subscription.state = new
    if new == SubscriptionState.ENDING and subscription.cancel_requested_at is None:
        subscription.cancel_requested_at = now
    if new == SubscriptionState.ENDED and subscription.ended_at is None:
        subscription.ended_at = now
    SYSTEM.record(
        db,
        "billing.subscription_state",
        "subscription",
        subscription.id,
        {"state": str(old)},
        {"state": str(new), "as_of": isoformat(as_of)},
    )
    return True


# --- events --------------------------------------------------------------------------------


def apply(
    db: Session,
    plan: Plan,
    processor: str,
    event: PaymentEvent,
    *,
    source: NotificationSource,
    now: dt.datetime | None = None,
    alerts: IAlertNotifier | None = None,
    request: Any = None,
) -> Outcome:
    """Record and apply one verified event of any processor, idempotently. ``request`` (a
    request or a task's) sends the failed-renewal email; without it none is sent."""
    now = now or utcnow()
    kind = EventKind(event.kind)
    _lock_money(db, processor, event)
    if kind != EventKind.CHECKOUT or event.subscription is not None:
        _lock_owner(db, processor, event)
    if kind == EventKind.CHECKOUT:
        _refunded_before_checkout(db, processor, event, now, alerts)
        if event.subscription is not None and event.order_id:
            info = event.subscription
            if info.order_id is None:
                info = replace(info, order_id=event.order_id)
            ensure_subscription(db, processor, info, now)
        return apply_event(db, plan, processor, event, source=source, now=now, alerts=alerts)
    if kind == EventKind.RENEWAL:
        return _renewal(db, plan, processor, event, source, now, alerts, request)
    if kind == EventKind.REFUND:
        return _refund(db, plan, processor, event, source, now, alerts)
    if kind == EventKind.SUBSCRIPTION:
        return _subscription_news(db, processor, event, source, now, alerts)
    _record(db, processor, event, source, now, None, Outcome("ignored"))
    return Outcome("ignored")


def _lock_money(db: Session, processor: str, event: PaymentEvent) -> None:
    """Events that name the same money (an invoice, a charge, a customer) are applied one after
    the other even before the user they concern is known: a refund that comes while its
    invoice's event is being applied waits for it, then finds the payment it made, instead of
    being recorded about no payment while the invoice, not seeing that refund yet, grants. One
    transaction-scoped advisory lock per reference, always in one order and before the user's
    lock (:func:`_lock_owner`), so that no two events wait for each other in a circle. SQLite
    (the embedded development database) has no such locks and writes one at a time anyway."""
    if db.get_bind().dialect.name != "postgresql":
        return
    ids = (event.payment_id, event.invoice_id, event.renewal_id, *event.references)
    for ref in sorted({ref[:128] for ref in ids if ref}):
        key = sa.func.hashtextextended(f"nproxy payment {processor} {ref}", 0)
        db.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def _lock_owner(db: Session, processor: str, event: PaymentEvent) -> None:
    """Lock the user the event is about before anything else: every event of one customer is
    then applied one after the other (their payments, subscription, cycles and the keys that
    point at them), and none waits for another in a circle."""
    orders = [event.order_id] if event.order_id else []
    info = event.subscription
    if info is not None and info.order_id:
        orders.append(info.order_id)
    user_id = None
    if info is not None and info.subscription_id:
        user_id = db.scalar(
            sa.select(Subscription.user_id).where(
                Subscription.processor == processor,
                Subscription.external_id == info.subscription_id[:128],
            )
        )
    if user_id is None and orders:
        user_id = db.scalar(
            sa.select(Payment.user_id).where(Payment.order_id.in_([o[:64] for o in orders]))
        )
    refs = [ref[:128] for ref in (event.payment_id, *event.references) if ref]
    if user_id is None and refs:
        user_id = db.scalar(
            sa.select(Payment.user_id)
            .where(
                Payment.processor == processor,
                sa.or_(Payment.processor_payment_id.in_(refs), Payment.invoice_id.in_(refs)),
            )
            .limit(1)
        ) or db.scalar(
            sa.select(Subscription.user_id)
            .where(
                Subscription.processor == processor,
                sa.or_(
                    Subscription.initial_invoice_id.in_(refs), Subscription.customer_id.in_(refs)
                ),
            )
            .limit(1)
        )
    if user_id is not None:
        db.execute(sa.select(User.id).where(User.id == user_id).with_for_update())


def _refunded_before_checkout(
    db: Session,
    processor: str,
    event: PaymentEvent,
    now: dt.datetime,
    alerts: IAlertNotifier | None,
) -> None:
    """A checkout whose money was refunded before the checkout itself was heard of (events
    arrive in any order) is born refunded and never activates. The refund named only the
    money's ids (a subscription's first invoice), so it was recorded about no payment, or,
    once the subscription was known, as a renewal born refunded: it is moved to the checkout.
    """
    refs = [ref[:128] for ref in event.references if ref]
    if not refs or not event.order_id or event.status != PaymentStatus.FINISHED:
        return
    checkout = db.scalar(
        sa.select(Payment)
        .where(Payment.order_id == event.order_id[:64], Payment.processor == processor)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if checkout is None or checkout.status in (PaymentState.FINISHED, PaymentState.REFUNDED):
        return
    # Recorded about no payment, flagged (the queue's partial index finds them).
    early = db.scalars(
        sa.select(PaymentNotification).where(
            PaymentNotification.payment_id.is_(None),
            PaymentNotification.needs_review,
            PaymentNotification.resolved_at.is_(None),
            PaymentNotification.processor == processor,
            PaymentNotification.processor_payment_id.in_(refs),
            PaymentNotification.status == str(PaymentStatus.REFUNDED),
        )
    ).all()
    # The checkout's own invoice taken for a renewal (a refund cannot tell them apart).
    info = event.subscription
    subscription_id = None
    if info is not None and info.subscription_id:
        subscription_id = db.scalar(
            sa.select(Subscription.id).where(
                Subscription.processor == processor,
                Subscription.external_id == info.subscription_id[:128],
            )
        )
    strays: list[Payment] = []
    if subscription_id is not None:
        strays = [
            stray
            for stray in db.scalars(
                sa.select(Payment)
                .where(
                    Payment.subscription_id == subscription_id,
                    Payment.invoice_id.in_(refs),
                    Payment.id != checkout.id,
                    Payment.status == PaymentState.REFUNDED,
                )
                .with_for_update()
            )
            if stray.cycle is None
        ]
    if not early and not strays:
        return
    checkout.status = PaymentState.REFUNDED
    for stray in strays:
        for note in list(stray.notifications):
            note.payment = checkout
            note.order_id = checkout.order_id
        db.delete(stray)
    for note in early:
        note.payment_id = checkout.id
        note.order_id = checkout.order_id
        note.resolved_at = now
        note.resolved_by = "system"
        note.resolution_note = "matched to its checkout when the checkout arrived"
        if alerts is not None:
            # The alert _unknown raised about it: the refund is accounted for now.
            alerts.resolve(
                AlertKind.PAYMENT_FLAGGED,
                f"{processor} {note.processor_payment_id}"[:200],
                "the refunded payment turned out to be a checkout's",
                db=db,
            )
    db.flush()
    end_cycle_for_refund(db, checkout, now)


def _record(
    db: Session,
    processor: str,
    event: PaymentEvent,
    source: NotificationSource,
    now: dt.datetime,
    payment: Payment | None,
    outcome: Outcome,
) -> None:
    reference = event.renewal_id or event.payment_id
    if reference is None and event.subscription is not None:
        reference = event.subscription.subscription_id or None
    db.add(
        PaymentNotification(
            payment_id=None if payment is None else payment.id,
            processor=processor[:64],
            source=source,
            order_id=None if payment is None else payment.order_id,
            status=str(event.status),
            processor_payment_id=None if reference is None else reference[:128],
            raw=dict(event.raw),
            result=outcome.result,
            needs_review=outcome.review is not None,
            detail=None if outcome.review is None else outcome.review[:255],
            received_at=now,
        )
    )
    db.flush()


def _unknown(
    db: Session,
    processor: str,
    event: PaymentEvent,
    source: NotificationSource,
    now: dt.datetime,
    alerts: IAlertNotifier | None,
    reason: str,
) -> Outcome:
    """An event about no subscription or payment we know: recorded and flagged, nothing else."""
    outcome = Outcome("unknown_subscription", reason)
    _record(db, processor, event, source, now, None, outcome)
    log.warning("%s %s event needs review: %s", processor, event.kind, reason)
    if alerts is not None:
        about = event.subscription.subscription_id if event.subscription else event.renewal_id
        alerts.raise_alert(
            AlertKind.PAYMENT_FLAGGED,
            f"{processor} {about or event.event_id or 'event'}"[:200],
            f"{processor} {event.kind} event ({event.status}) needs review: {reason}",
            db=db,
        )
    return outcome


def _checkout_payment(db: Session, subscription: Subscription) -> Payment | None:
    return db.scalar(sa.select(Payment).where(Payment.order_id == subscription.order_id))


def _subscription_news(
    db: Session,
    processor: str,
    event: PaymentEvent,
    source: NotificationSource,
    now: dt.datetime,
    alerts: IAlertNotifier | None,
) -> Outcome:
    info = event.subscription
    subscription = None if info is None else ensure_subscription(db, processor, info, now)
    if subscription is None:
        return _unknown(db, processor, event, source, now, alerts, "unknown subscription")
    outcome = Outcome("subscription")
    _record(db, processor, event, source, now, _checkout_payment(db, subscription), outcome)
    return outcome


def _renewal_payment(
    db: Session,
    subscription: Subscription,
    invoice_id: str,
    now: dt.datetime,
    status: PaymentState = PaymentState.CREATED,
) -> Payment:
    """The payment of one renewal invoice, made when first heard of (the subscription's lock
    is held: one per invoice)."""
    invoice_id = invoice_id[:128]
    payment = db.scalar(
        sa.select(Payment).where(
            Payment.subscription_id == subscription.id, Payment.invoice_id == invoice_id
        )
    )
    if payment is not None:
        return payment
    # A refund that came before the invoice (events arrive in any order) was recorded about
    # no payment: the renewal is born refunded, and the refund is matched to it.
    early = db.scalar(
        sa.select(PaymentNotification)
        .where(
            PaymentNotification.payment_id.is_(None),
            PaymentNotification.processor == subscription.processor,
            PaymentNotification.processor_payment_id == invoice_id,
            PaymentNotification.status == str(PaymentStatus.REFUNDED),
        )
        .order_by(PaymentNotification.id)
        .limit(1)
    )
    if early is not None:
        status = PaymentState.REFUNDED
    payment = Payment(
        order_id=new_order_id(),
        user_id=subscription.user_id,
        processor=subscription.processor,
        amount=subscription.amount,
        currency=subscription.currency,
        status=status,
        invoice_id=invoice_id,
        subscription_id=subscription.id,
        plan_id=subscription.plan_id,
        plan_units=subscription.units,
        plan_period_months=subscription.period_months,
        created_at=now,
    )
    db.add(payment)
    db.flush()
    if early is not None:
        early.payment_id = payment.id
        early.order_id = payment.order_id
        early.resolved_at = now
        early.resolved_by = "system"
        early.resolution_note = "matched to its renewal when the invoice arrived"
    return payment


def _renewal(
    db: Session,
    plan: Plan,
    processor: str,
    event: PaymentEvent,
    source: NotificationSource,
    now: dt.datetime,
    alerts: IAlertNotifier | None,
    request: Any,
) -> Outcome:
    info = event.subscription
    if info is None or not event.renewal_id:
        return _unknown(db, processor, event, source, now, alerts, "renewal without its invoice")
    subscription = ensure_subscription(db, processor, info, now)
    if subscription is None:
        return _unknown(
            db, processor, event, source, now, alerts, "renewal of an unknown subscription"
        )
    if subscription.initial_invoice_id == event.renewal_id[:128]:
        # The checkout's own invoice: its checkout activates, not this.
        outcome = Outcome("subscription")
        _record(db, processor, event, source, now, _checkout_payment(db, subscription), outcome)
        return outcome
    payment = _renewal_payment(db, subscription, event.renewal_id, now)
    renewal = replace(event, order_id=payment.order_id, invoice_id=payment.invoice_id)
    outcome = apply_event(db, plan, processor, renewal, source=source, now=now, alerts=alerts)
    as_of = info.as_of or now
    if outcome.result == "activated":
        if subscription.state == SubscriptionState.PAST_DUE:
            _set_state(db, subscription, SubscriptionState.ACTIVE, as_of, now)
        if alerts is not None:
            alerts.resolve(
                AlertKind.PAYMENT_FAILED,
                subscription_subject(subscription),
                "a renewal was paid",
                db=db,
            )
    elif event.status == PaymentStatus.FAILED and outcome.result == "updated":
        # The first word of this invoice failing: once per invoice, however often it is said.
        if subscription.renews:
            _set_state(db, subscription, SubscriptionState.PAST_DUE, as_of, now)
        _payment_failed(db, subscription, payment, event, alerts, request)
    return outcome


def _payment_failed(
    db: Session,
    subscription: Subscription,
    payment: Payment,
    event: PaymentEvent,
    alerts: IAlertNotifier | None,
    request: Any,
) -> None:
    user = subscription.user
    plan = subscription.plan
    amount = f"{money(payment.amount)} {payment.currency}"
    if alerts is not None:
        alerts.raise_alert(
            AlertKind.PAYMENT_FAILED,
            subscription_subject(subscription),
            f"{subscription.processor} could not charge the {amount} renewal of {plan.name} "
            f"for user {user.id}; they were emailed a link to fix their card",
            db=db,
        )
    if request is None or user.is_blocked:
        return
    from nproxy_core.config import public_url
    from nproxy_core.i18n.localizers import localizer_for
    from nproxy_core.notifications import send_email

    send_email(
        request,
        user.email,
        "payment_failed",
        {
            "plan": plan,
            "amount": amount,
            "pay_url": event.pay_url,
            "manage_url": public_url(request, "dashboard") + "#subscription",
            "ends": _paid_until(db, subscription),
            "localizer": localizer_for(request.registry, user.language),
        },
    )


def _refund(
    db: Session,
    plan: Plan,
    processor: str,
    event: PaymentEvent,
    source: NotificationSource,
    now: dt.datetime,
    alerts: IAlertNotifier | None,
) -> Outcome:
    refs = [ref[:128] for ref in (event.payment_id, *event.references) if ref]
    payment = None
    if event.order_id:
        payment = db.scalar(sa.select(Payment).where(Payment.order_id == event.order_id[:64]))
    if payment is None and refs:
        payment = db.scalar(
            sa.select(Payment)
            .where(
                Payment.processor == processor,
                sa.or_(Payment.processor_payment_id.in_(refs), Payment.invoice_id.in_(refs)),
            )
            .order_by(Payment.id)
            .limit(1)
        )
    if payment is None and refs:
        started = db.scalar(
            sa.select(Subscription).where(
                Subscription.processor == processor, Subscription.initial_invoice_id.in_(refs)
            )
        )
        if started is not None:
            payment = _checkout_payment(db, started)
    if payment is None and event.renewal_id and refs:
        # A renewal refunded before its invoice was heard of: its payment is made refunded,
        # so the invoice, when it comes, grants nothing.
        owner = db.scalar(
            sa.select(Subscription.external_id)
            .where(Subscription.processor == processor, Subscription.customer_id.in_(refs))
            .order_by(Subscription.id.desc())
            .limit(1)
        )
        subscription = None if owner is None else _locked(db, processor, owner)
        if subscription is not None:
            payment = _renewal_payment(
                db, subscription, event.renewal_id, now, status=PaymentState.REFUNDED
            )
    if payment is None:
        return _unknown(db, processor, event, source, now, alerts, "refund of an unknown payment")
    if event.status == PaymentStatus.REFUNDED:
        outcome = _refunded_first(db, processor, payment, event, source, now)
        if outcome is not None:
            return outcome
    refund = replace(event, order_id=payment.order_id, invoice_id=None, payment_id=None)
    return apply_event(db, plan, processor, refund, source=source, now=now, alerts=alerts)


def _refunded_first(
    db: Session,
    processor: str,
    payment: Payment,
    event: PaymentEvent,
    source: NotificationSource,
    now: dt.datetime,
) -> Outcome | None:
    """A whole refund of money whose payment the processor has not yet said was paid (its
    events arrive in any order; a refund means the money came): the payment is born refunded,
    so that word, when it comes, grants nothing, as when the refund follows it. None: the
    payment was paid (or only partly), the ordinary refund applies."""
    locked = db.scalar(
        sa.select(Payment)
        .where(Payment.id == payment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    payment = locked
    if payment.status in (
        PaymentState.FINISHED,
        PaymentState.REFUNDED,
        PaymentState.PARTIALLY_PAID,
    ):
        return None
    payment.status = PaymentState.REFUNDED
    outcome = Outcome("refunded")
    _record(db, processor, event, source, now, payment, outcome)
    end_cycle_for_refund(db, payment, now)
    return outcome


# --- what the user sees and does -----------------------------------------------------------


def renewing_subscription(db: Session, user_id: int) -> Subscription | None:
    """The user's subscription that still renews (or is past due), if any."""
    return db.scalar(
        sa.select(Subscription)
        .where(
            Subscription.user_id == user_id,
            Subscription.state.in_((SubscriptionState.ACTIVE, SubscriptionState.PAST_DUE)),
        )
        .order_by(Subscription.id.desc())
        .limit(1)
    )


def _latest(user_id: int) -> sa.Select[tuple[Subscription]]:
    """The user's latest subscription, one not yet ended before any that has."""
    return (
        sa.select(Subscription)
        .where(Subscription.user_id == user_id)
        .order_by(
            sa.case((Subscription.state == SubscriptionState.ENDED, 1), else_=0),
            Subscription.id.desc(),
        )
        .limit(1)
    )


def _paid_until(db: Session, subscription: Subscription) -> dt.datetime | None:
    """The end of the last cycle the subscription's payments granted."""
    return db.scalar(
        sa.select(sa.func.max(BillingCycle.ends_at))
        .join(Payment, Payment.id == BillingCycle.payment_id)
        .where(Payment.subscription_id == subscription.id)
    )


def subscription_view(
    db: Session,
    user_id: int,
    processors: Any = None,
    now: dt.datetime | None = None,
    localizer: Any = None,
) -> dict[str, Any] | None:
    """The user's latest subscription as the account page and the API show it: plan (its name
    in the language of ``localizer``), state, ``renews_on`` (renewing) or ``ends_on``
    (cancelled or ended), and what can be done."""
    now = now or utcnow()
    subscription = db.scalar(_latest(user_id))
    if subscription is None:
        return None
    paid_until = _paid_until(db, subscription)
    if paid_until is None:
        return None  # started, never paid: nothing to show yet
    if subscription.state == SubscriptionState.ENDED and paid_until <= now:
        return None  # over and done with
    processor = None if processors is None else processors.get(subscription.processor)
    renews = subscription.renews
    plan = subscription.plan
    return {
        "id": subscription.id,
        "processor": subscription.processor,
        "processor_name": getattr(processor, "display_name", "") or subscription.processor,
        "plan": {"code": plan.code, "name": localized(plan, "name", localizer)},
        "amount": money(subscription.amount),
        "currency": subscription.currency,
        "period_months": subscription.period_months,
        "state": str(subscription.state),
        "renews": renews,
        "renews_on": isoformat(paid_until) if renews else None,
        "ends_on": None if renews else isoformat(paid_until),
        "past_due": subscription.state == SubscriptionState.PAST_DUE,
        "can_cancel": renews and processor is not None,
        "can_manage": processor is not None and bool(subscription.customer_id),
    }


def _owned(db: Session, user_id: int) -> Subscription:
    subscription = db.scalar(_latest(user_id).with_for_update())
    if subscription is None:
        raise NotFound(_("You have no subscription."))
    return subscription


def cancel_renewal(
    db: Session,
    user: Any,
    processors: Any,
    actor: Actor,
    now: dt.datetime | None = None,
) -> Subscription:
    """Stop the user's subscription from renewing: the paid cycle runs to its end. Refused
    (nothing changes) when nothing renews; a processor that fails raises
    :class:`PaymentProcessorError` and nothing changes here either."""
    now = now or utcnow()
    subscription = _owned(db, user.id)
    if not subscription.renews:
        raise Conflict(_("Your subscription does not renew: there is nothing to cancel."))
    processor: PaymentProcessor | None = processors.get(subscription.processor)
    if processor is None:
        raise Conflict(
            _("Your subscription's payment method is not available right now; please try later.")
        )
    before = _view(subscription)
    info = processor.cancel_renewal(subscription.external_id)
    # The processor's answer is its newest word: no earlier report may undo it.
    as_of = max(now, subscription.state_at or now)
    _report_state(db, subscription, replace(info, as_of=as_of, renews=False), now)
    actor.record(
        db,
        "billing.subscription_cancel",
        "subscription",
        subscription.id,
        before,
        _view(subscription),
    )
    return subscription


def manage_url(db: Session, user: Any, processors: Any, return_url: str) -> str:
    """Where the user manages their subscription at the processor (card, invoices)."""
    subscription = _owned(db, user.id)
    processor: PaymentProcessor | None = processors.get(subscription.processor)
    if processor is None or not subscription.customer_id:
        raise Conflict(
            _("Managing this subscription is not available right now; please try later.")
        )
    return processor.manage_url(subscription.customer_id, return_url)


def check_can_subscribe(db: Session, user_id: int) -> None:
    """A second renewing subscription would charge twice: refused, naming the way out."""
    if renewing_subscription(db, user_id) is not None:
        raise Conflict(
            _(
                "You already have a subscription that renews by itself. Cancel its renewal on your "
                "account page first, or buy a credit pack."
            )
        )


# --- reconciliation ------------------------------------------------------------------------


def reconcile_subscriptions(
    db: Session,
    plan: Plan,
    processors: Any,
    *,
    now: dt.datetime | None = None,
    limit: int = 200,
    alerts: IAlertNotifier | None = None,
    request: Any = None,
) -> dict[str, int]:
    """Ask the processors about renewing subscriptions whose period is ending or over, and
    about those past due (their open renewal invoice), so a lost renewal (or cancellation)
    webhook still counts."""
    now = now or utcnow()
    names = [name for name, p in processors.items() if getattr(p, "recurring", False)]
    counts = {"checked": 0, "failed": 0}
    if not names:
        return counts
    rows = db.execute(
        sa.select(Subscription.id, Subscription.processor, Subscription.external_id)
        .where(
            Subscription.processor.in_(names),
            Subscription.state.in_(
                (SubscriptionState.ACTIVE, SubscriptionState.PAST_DUE, SubscriptionState.ENDING)
            ),
            sa.or_(
                Subscription.current_period_end.is_(None),
                Subscription.current_period_end <= now + RENEWAL_DUE,
                # Its declined renewal may be paid at any moment (a card fixed, a retry).
                Subscription.state == SubscriptionState.PAST_DUE,
            ),
        )
        .order_by(Subscription.id)
        .limit(limit)
    ).all()
    for _id, name, external_id in rows:
        try:
            events = processors[name].fetch_subscription(external_id)
        except PaymentProcessorError as exc:
            counts["failed"] += 1
            log.warning("reconciliation: %s subscription %s: %s", name, external_id, exc)
            continue
        for event in events:
            apply_reconciled(
                db,
                plan,
                name,
                event,
                counts,
                what=f"{name} subscription {external_id}",
                now=now,
                alerts=alerts,
                request=request,
            )
    return counts


def apply_reconciled(
    db: Session,
    plan: Plan,
    name: str,
    event: PaymentEvent,
    counts: dict[str, int],
    *,
    what: str,
    now: dt.datetime,
    alerts: IAlertNotifier | None,
    request: Any,
    logger: logging.Logger = log,
) -> None:
    """Apply an event reconciliation learned of (``what``: its processor and payment or
    subscription) in a savepoint of its own and count it in ``counts``: ``checked`` and its
    result, or ``failed`` (logged to ``logger``, the rest carries on)."""
    try:
        with db.begin_nested():
            outcome = apply(
                db,
                plan,
                name,
                event,
                source=NotificationSource.RECONCILIATION,
                now=now,
                alerts=alerts,
                request=request,
            )
    except Exception:
        counts["failed"] += 1
        logger.exception("reconciliation: could not apply %s", what)
        return
    counts["checked"] += 1
    counts[outcome.result] = counts.get(outcome.result, 0) + 1
