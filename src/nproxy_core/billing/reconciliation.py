"""Reconciliation: asking the processors about open payments, so a lost webhook still activates."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.alerts import IAlertNotifier
from nproxy_core.billing import subscriptions
from nproxy_core.billing.models import OPEN_STATES, Payment
from nproxy_core.billing.plan import Plan
from nproxy_core.db import utcnow
from nproxy_core.plugins import PaymentProcessor, PaymentProcessorError

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
    request: Any = None,
) -> dict[str, int]:
    """Ask the processors about open payments, so a lost webhook still activates.

    Only payments whose processor payment id is known can be asked about: NOWPayments tells
    it only through an IPN, so an invoice whose every IPN was lost stays open (known gap).
    A processor that answers by its checkout's id (Stripe) is asked about every open checkout.
    """
    now = now or utcnow()
    # A processor that answers by the checkout's own id (status_by_invoice_id) is asked even
    # when no notification ever told the payment's id.
    by_invoice = [n for n, p in processors.items() if getattr(p, "status_by_invoice_id", False)]
    rows = db.execute(
        sa.select(
            Payment.order_id, Payment.processor, Payment.processor_payment_id, Payment.invoice_id
        )
        .where(
            Payment.status.in_(OPEN_STATES),
            sa.or_(
                Payment.processor_payment_id.is_not(None),
                sa.and_(Payment.processor.in_(by_invoice), Payment.invoice_id.is_not(None)),
            ),
            Payment.created_at > now - RECONCILE_WINDOW,
        )
        .order_by(Payment.id)
        .limit(limit)
    ).all()
    counts = {"checked": 0, "failed": 0}
    for order_id, name, processor_payment_id, invoice_id in rows:
        processor = processors.get(name)
        if processor is None:
            continue
        asked = processor_payment_id
        if getattr(processor, "status_by_invoice_id", False) and invoice_id:
            asked = invoice_id
        try:
            event = processor.fetch_status(asked)
        except PaymentProcessorError as exc:
            counts["failed"] += 1
            log.warning("reconciliation: %s payment %s: %s", name, order_id, exc)
            continue
        if event.order_id is None:
            # The status answer came for the payment id we learned from this order.
            event = replace(event, order_id=order_id)
        subscriptions.apply_reconciled(
            db,
            plan,
            name,
            event,
            counts,
            what=f"{name} payment {order_id}",
            now=now,
            alerts=alerts,
            request=request,
            logger=log,
        )
    return counts
