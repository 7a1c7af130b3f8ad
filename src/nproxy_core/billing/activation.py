"""Granting what a payment paid for (a cycle where ``cycles.py`` places it, or a credit pack's
balance), and taking it back after a refund.

Changing plan (DESIGN 4.12): a paid cycle of a plan priced higher than the plan of the cycle
running at confirmation is an upgrade. It starts at once and ends the running cycle; the
running cycle's unused units become a pack balance valid until that cycle's original end, and
the renewals queued after it follow the new cycle. "Higher" compares prices in one currency
only: a plan priced in another currency is never an upgrade (no exchange rate is assumed), so
it is placed like a renewal, as is the same plan or a cheaper one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.accounts.models import User
from nproxy_core.audit import SYSTEM
from nproxy_core.billing.cycles import (
    Span,
    current_index,
    follow,
    schedule_paid_cycle,
    schedule_upgrade,
)
from nproxy_core.billing.models import BalanceSource, BillingCycle, PackBalance, Payment
from nproxy_core.billing.models import Plan as PlanRow
from nproxy_core.billing.packs import (
    balance_of,
    balance_view,
    grant_bought_pack,
    grant_pack,
    revoke_for_refund,
)
from nproxy_core.billing.plan import Plan
from nproxy_core.billing.presenters import isoformat
from nproxy_core.db import utcnow

log = logging.getLogger(__name__)

#: What a feature above billing does, in the same transaction, when a payment grants what it
#: paid for and when it is refunded (the referral reward and its claw-back): by name, set when
#: the app is configured (:func:`register_payment_hook`).
PaymentHook = Callable[[Session, Payment, dt.datetime], object]
_HOOKS: dict[str, tuple[PaymentHook, PaymentHook]] = {}


def register_payment_hook(name: str, activated: PaymentHook, refunded: PaymentHook) -> None:
    """Call ``activated`` after every activation of a payment (any processor, an admin's
    resolve too) and ``refunded`` when a refund takes back what a payment gave."""
    _HOOKS[name] = (activated, refunded)


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
    # The cycles locked too (after the user, as every activation does; holds lock a cycle and
    # then packs, never the user): a hold taken meanwhile on the running cycle either commits
    # first, and its units are not counted as unused, or waits and finds the cycle ended.
    cycles = db.scalars(
        sa.select(BillingCycle)
        .where(BillingCycle.user_id == user_id, BillingCycle.ends_at > now)
        .order_by(BillingCycle.starts_at, BillingCycle.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    spans = [
        Span(c.starts_at, c.ends_at, c.period_months, exhausted=c.remaining <= 0) for c in cycles
    ]
    plan_id, units, months = _terms(db, plan, payment)
    running = current_index(now, spans)
    upgrade = running is not None and _is_upgrade(cycles[running], plan_id, payment)
    if upgrade:
        assert running is not None
        before = {c.id: (c.starts_at, c.ends_at) for c in cycles}
        moved, new = schedule_upgrade(now, spans, running, months)
    else:
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
    if upgrade:
        assert running is not None
        _upgraded(db, cycles[running], cycle, cycles, before, now)
    log.info("activated billing cycle %s for user %s", cycle.id, user_id)
    return cycle


def _is_upgrade(running: BillingCycle, plan_id: int, payment: Payment | None) -> bool:
    """Whether a payment's plan is priced higher than the running cycle's plan, in the same
    currency. Only a payment upgrades (an admin's free cycle is placed like a renewal); the
    price compared is the one paid (the plan's price at checkout) against the running plan's."""
    if payment is None or plan_id == running.plan_id:
        return False
    old = running.plan
    if payment.currency.upper() != old.currency.upper():
        return False
    return payment.amount > old.price


def _upgraded(
    db: Session,
    old: BillingCycle,
    new: BillingCycle,
    cycles: list[BillingCycle],
    before: dict[int, tuple[dt.datetime, dt.datetime]],
    now: dt.datetime,
) -> PackBalance | None:
    """After an upgrade: the old cycle's unused units become a pack balance valid until its
    original end (the units it holds for images in flight settle on it as usual), and an
    audit row ``billing.plan_upgraded`` says what moved."""
    original_end = before[old.id][1]
    left = old.request_limit - old.used - old.reserved
    balance = None
    if left > 0:
        balance = grant_pack(
            db,
            old.user_id,
            units=left,
            label=f"{old.plan.name}: unused units",
            expires_at=original_end,
            source=BalanceSource.UPGRADE,
            models=old.plan.models or (),
            now=now,
        )
    moved = [
        {
            "cycle_id": c.id,
            "starts_at": isoformat(c.starts_at),
            "ends_at": isoformat(c.ends_at),
            "was": [isoformat(before[c.id][0]), isoformat(before[c.id][1])],
        }
        for c in cycles
        if c is not old and (c.starts_at, c.ends_at) != before[c.id]
    ]
    SYSTEM.record(
        db,
        "billing.plan_upgraded",
        "user",
        old.user_id,
        {
            "cycle_id": old.id,
            "plan": old.plan.code,
            "ends_at": isoformat(original_end),
            "unused_units": max(left, 0),
        },
        {
            "cycle_id": new.id,
            "plan": new.plan.code,
            "starts_at": isoformat(new.starts_at),
            "ends_at": isoformat(new.ends_at),
            "old_cycle_ends_at": isoformat(old.ends_at),
            "payment_order_id": None if new.payment is None else new.payment.order_id,
            "balance": None if balance is None else balance_view(balance),
            "moved": moved,
        },
    )
    return balance


def is_activated(db: Session, payment: Payment) -> bool:
    """Whether the payment already granted what it paid for (its cycle or its pack balance)."""
    if payment.pack_id is not None:
        return balance_of(db, payment) is not None
    return payment.cycle is not None


def activate_payment(
    db: Session, plan: Plan | PlanRow, payment: Payment, now: dt.datetime
) -> BillingCycle | PackBalance:
    """Grant what a finished (or admin-resolved) payment paid for, once: a pack payment its
    balance, any other its cycle (of ``plan`` when the payment recorded none)."""
    if payment.pack_id is not None:
        granted: BillingCycle | PackBalance = grant_bought_pack(db, payment, now)
    else:
        granted = activate_cycle(db, plan, payment.user_id, now, payment=payment)
    for activated, _refunded in list(_HOOKS.values()):
        activated(db, payment, now)
    return granted


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
    """A refunded payment takes its cycle (or its pack balance's unused units) back from now
    on; an audit row says so."""
    for _activated, refunded in list(_HOOKS.values()):
        refunded(db, payment, now)
    if payment.pack_id is not None and revoke_for_refund(db, payment, now) is not None:
        return
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
    moved = _close_the_gap(db, cycle, now)
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
            "moved": moved,
        },
    )


def _close_the_gap(db: Session, refunded: BillingCycle, now: dt.datetime) -> list[dict]:
    """The cycles queued after a refunded one were paid for too: they move forward to follow
    on from where it now ends (or from now), each keeping its length, so no gap opens. The
    order of locks is activation's: the user, then their cycles."""
    db.execute(sa.select(User.id).where(User.id == refunded.user_id).with_for_update())
    cycles = db.scalars(
        sa.select(BillingCycle)
        .where(
            BillingCycle.user_id == refunded.user_id,
            BillingCycle.id != refunded.id,
            BillingCycle.starts_at > refunded.ends_at,
        )
        .order_by(BillingCycle.starts_at, BillingCycle.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    if not cycles:
        return []
    spans = [Span(c.starts_at, c.ends_at, c.period_months) for c in cycles]
    follow(spans, refunded.ends_at, max(now, refunded.ends_at))
    moved = []
    for cycle, span in zip(cycles, spans, strict=True):
        if (span.starts_at, span.ends_at) != (cycle.starts_at, cycle.ends_at):
            moved.append(
                {
                    "cycle_id": cycle.id,
                    "was": [isoformat(cycle.starts_at), isoformat(cycle.ends_at)],
                    "starts_at": isoformat(span.starts_at),
                    "ends_at": isoformat(span.ends_at),
                }
            )
            cycle.starts_at, cycle.ends_at = span.starts_at, span.ends_at
    return moved
