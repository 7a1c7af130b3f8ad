"""An admin's decision on a payment flagged for review (DESIGN 4.9): ``activate`` grants the
cycle (or the credit pack) the payment paid for, once; ``dismiss`` closes it without one. A
note saying why is required either way. Shared by every surface; each decision writes one
audit row.

The payment row is locked while deciding, so two admins resolving at once are applied one
after the other: the second finds the payment resolved and is refused (and the unique
``billing_cycles.payment_id`` would refuse a second cycle anyway).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, object_session

from nproxy_core.alerts import AlertKind, IAlertNotifier
from nproxy_core.audit import Actor
from nproxy_core.billing.activation import activate_payment, is_activated
from nproxy_core.billing.models import (
    Payment,
    PaymentNotification,
    PaymentState,
    Resolution,
)
from nproxy_core.billing.notifications import payment_subject
from nproxy_core.billing.packs import balance_of
from nproxy_core.billing.plan import Plan
from nproxy_core.billing.presenters import isoformat
from nproxy_core.db import utcnow
from nproxy_core.errors import Conflict, NotFound, ValidationError
from nproxy_core.templating import money

__all__ = ["Decision", "dismiss_notification", "payment_view", "resolve_payment"]

NOTE_LIMIT = 1000


class Decision(enum.StrEnum):
    ACTIVATE = "activate"
    DISMISS = "dismiss"


def parse_decision(value: Any) -> Decision:
    try:
        return Decision(value)
    except ValueError:
        raise ValidationError(
            "decision must be activate or dismiss", fields={"decision": "invalid"}
        ) from None


def clean_note(value: Any, *, field: str = "note", limit: int = NOTE_LIMIT) -> str:
    """A required free-text reason: stripped, not empty, no control characters but newlines."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"a {field} is required: say why", fields={field: "required"})
    text = value.strip()
    if len(text) > limit:
        raise ValidationError(
            f"the {field} is longer than {limit} characters", fields={field: "long"}
        )
    if any(ord(c) < 32 and c not in "\n\r\t" for c in text) or "\x7f" in text:
        raise ValidationError(f"the {field} contains control characters", fields={field: "invalid"})
    return text


def payment_view(payment: Payment) -> dict[str, Any]:
    """What an audit row keeps of a payment under review."""
    return {
        "order_id": payment.order_id,
        "user_id": payment.user_id,
        "status": str(payment.status),
        "amount": money(payment.amount),
        "currency": payment.currency,
        "needs_review": payment.needs_review,
        "review_reason": payment.review_reason,
        "resolution": None if payment.resolution is None else str(payment.resolution),
        "resolution_note": payment.resolution_note,
        "resolved_by": payment.resolved_by,
        "resolved_at": isoformat(payment.resolved_at),
        "cycle_id": None if payment.cycle is None else payment.cycle.id,
        "pack": None if payment.pack is None else payment.pack.code,
        "pack_balance_id": _balance_id(payment),
    }


def _balance_id(payment: Payment) -> int | None:
    """The id of the balance a pack payment granted, if any."""
    db = object_session(payment)
    if payment.pack_id is None or db is None:
        return None
    balance = balance_of(db, payment)
    return None if balance is None else balance.id


def _locked(db: Session, model: Any, row_id: int, what: str) -> Any:
    """The row, locked until commit and read fresh: concurrent decisions wait for each other."""
    row = db.scalar(
        sa.select(model)
        .where(model.id == row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound(f"no {what} with id {row_id}")
    return row


def resolve_payment(
    db: Session,
    plan: Plan,
    payment_id: int,
    *,
    decision: Any,
    note: Any,
    actor: Actor,
    alerts: IAlertNotifier,
    now: dt.datetime | None = None,
) -> Payment:
    """Resolve a flagged payment: ``activate`` grants its cycle, ``dismiss`` closes it.

    Its ``payment_flagged`` alert resolves with it (only if this transaction commits), and
    the "resolved" message goes out right after the commit."""
    decision = parse_decision(decision)
    note = clean_note(note)
    now = now or utcnow()
    payment: Payment = _locked(db, Payment, payment_id, "payment")
    if not payment.needs_review:
        raise Conflict(f"payment {payment.id} is not flagged for review")
    if payment.resolved_at is not None:
        raise Conflict(
            f"payment {payment.id} was already resolved ({payment.resolution}) by "
            f"{payment.resolved_by} on {payment.resolved_at:%Y-%m-%d %H:%M} UTC"
        )
    before = payment_view(payment)
    if decision == Decision.ACTIVATE:
        if payment.cycle is not None:
            raise Conflict(f"payment {payment.id} already activated cycle {payment.cycle.id}")
        if is_activated(db, payment):
            raise Conflict(f"payment {payment.id} already granted its credit pack")
        if payment.status == PaymentState.REFUNDED:
            raise Conflict(f"payment {payment.id} was refunded: there is nothing to activate")
        activate_payment(db, plan, payment, now)
    payment.resolved_at = now
    payment.resolution = (
        Resolution.ACTIVATED if decision == Decision.ACTIVATE else Resolution.DISMISSED
    )
    payment.resolution_note = note
    payment.resolved_by = actor.name[:320]
    db.flush()
    actor.record(db, "payment.resolve", "payment", payment.id, before, payment_view(payment))
    detail = f"{payment.resolution} by {actor.name} ({actor.surface})"
    alerts.resolve(AlertKind.PAYMENT_FLAGGED, payment_subject(payment.id), detail, db=db)
    return payment


def notification_view(notification: PaymentNotification) -> dict[str, Any]:
    return {
        "processor": notification.processor,
        "order_id": notification.order_id,
        "status": notification.status,
        "detail": notification.detail,
        "resolved_at": isoformat(notification.resolved_at),
        "resolved_by": notification.resolved_by,
        "resolution_note": notification.resolution_note,
    }


def dismiss_notification(
    db: Session,
    notification_id: int,
    *,
    note: Any,
    actor: Actor,
    now: dt.datetime | None = None,
) -> PaymentNotification:
    """Close a notification about no known payment (an unknown order) after looking at it.

    There is no payment to activate: if money was received for a real customer, grant their
    cycle from their page (with the reason), then dismiss this with a note saying so.
    """
    note = clean_note(note)
    notification: PaymentNotification = _locked(
        db, PaymentNotification, notification_id, "payment notification"
    )
    if notification.payment_id is not None:
        raise Conflict(
            f"notification {notification_id} belongs to payment {notification.payment_id}: "
            "resolve the payment instead"
        )
    if not notification.needs_review:
        raise Conflict(f"notification {notification_id} is not flagged for review")
    if notification.resolved_at is not None:
        raise Conflict(
            f"notification {notification_id} was already dismissed by {notification.resolved_by}"
        )
    before = notification_view(notification)
    notification.resolved_at = now or utcnow()
    notification.resolved_by = actor.name[:320]
    notification.resolution_note = note
    db.flush()
    actor.record(
        db,
        "payment_notification.dismiss",
        "payment_notification",
        notification.id,
        before,
        notification_view(notification),
    )
    return notification
