"""Reconciliation: asking the processors about open payments, so a lost webhook still activates."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.billing.models import OPEN_STATES, NotificationSource, Payment
from nproxy_core.billing.notifications import apply_event
from nproxy_core.billing.plan import Plan
from nproxy_core.db import utcnow
from nproxy_core.plugins import PaymentProcessor, PaymentProcessorError
from nproxy_core.telegram import IAlertNotifier

log = logging.getLogger(__name__)

#: Older open payments are left to admins: the processor has long given up on them.
RECONCILE_WINDOW = dt.timedelta(days=14)


def reconcile_open_payments(
    db: Session,
    plan: Plan,
    processors: Mapping[str, PaymentProcessor],
    *,
    now: dt.datetime | None = None,
    limit: int = 500,
    alerts: IAlertNotifier | None = None,
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
                    db,
                    plan,
                    name,
                    event,
                    source=NotificationSource.RECONCILIATION,
                    now=now,
                    alerts=alerts,
                )
        except Exception:
            counts["failed"] += 1
            log.exception("reconciliation: could not apply %s payment %s", name, order_id)
            continue
        counts["checked"] += 1
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return counts
