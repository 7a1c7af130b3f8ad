"""Granting a paid cycle where ``cycles.py`` places it, and taking a refunded one back."""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.accounts.models import User
from nproxy_core.audit import SYSTEM
from nproxy_core.billing.cycles import Span, schedule_paid_cycle
from nproxy_core.billing.models import BillingCycle, Payment
from nproxy_core.billing.models import Plan as PlanRow
from nproxy_core.billing.plan import Plan
from nproxy_core.billing.presenters import isoformat
from nproxy_core.db import utcnow

log = logging.getLogger(__name__)


def activate_cycle(
    db: Session,
    plan: Plan | PlanRow,
    user_id: int,
    now: dt.datetime | None = None,
    *,
    payment: Payment | None = None,
) -> BillingCycle:
    """Grant one cycle of the plan, placed by :func:`schedule_paid_cycle`.

    A payment that recorded its plan at checkout gets that plan's units and period as they were
    then, whatever ``plan`` (the default one) says now. Also the way for admins to grant a cycle
    without a payment.
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
    plan_id, units, months = _terms(db, plan, payment)
    moved, new = schedule_paid_cycle(now, spans, months)
    for cycle, span in zip(cycles, moved, strict=True):
        cycle.starts_at, cycle.ends_at = span.starts_at, span.ends_at
    cycle = BillingCycle(
        user_id=user_id,
        starts_at=new.starts_at,
        ends_at=new.ends_at,
        period_months=new.months,
        plan_id=plan_id,
        request_limit=units,
        payment=payment,
        created_at=now,
    )
    db.add(cycle)
    db.flush()
    log.info("activated billing cycle %s for user %s", cycle.id, user_id)
    return cycle


def _terms(db: Session, plan: Plan | PlanRow, payment: Payment | None) -> tuple[int, int, int]:
    """(plan id, units, months) of the cycle to grant."""
    if payment is not None and payment.plan_id is not None:
        plan_id, units, months = payment.plan_id, payment.plan_units, payment.plan_period_months
        if units is not None and months is not None:
            return plan_id, units, months
    if isinstance(plan, PlanRow):
        return plan.id, plan.units, plan.period_months
    # The default plan's terms from the settings: the row of the same code.
    plan_id = db.scalar(sa.select(PlanRow.id).where(PlanRow.code == plan.code))
    if plan_id is None:
        raise LookupError(f"no plan {plan.code!r} (nproxy.plan.default)")
    return plan_id, plan.request_limit, plan.period_months


def end_cycle_for_refund(db: Session, payment: Payment, now: dt.datetime) -> None:
    """A refunded payment takes its cycle back from now on; an audit row says so."""
    cycle = payment.cycle
    if cycle is None:
        SYSTEM.record(
            db,
            "billing.payment_refunded",
            "payment",
            payment.id,
            after={"order_id": payment.order_id, "status": str(payment.status)},
        )
        return
    before = {"starts_at": isoformat(cycle.starts_at), "ends_at": isoformat(cycle.ends_at)}
    # A cycle not started yet shrinks to nothing rather than ending before it begins.
    cycle.ends_at = max(cycle.starts_at, min(cycle.ends_at, now))
    SYSTEM.record(
        db,
        "billing.cycle_ended_by_refund",
        "billing_cycle",
        cycle.id,
        before,
        {
            "starts_at": isoformat(cycle.starts_at),
            "ends_at": isoformat(cycle.ends_at),
            "payment_order_id": payment.order_id,
        },
    )
