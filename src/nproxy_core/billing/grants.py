"""An admin's free cycle: one cycle of the plan granted without a payment, with a reason; or
free units (``grant_units``), a pack balance of their own.

Placed like a paid one (``cycles.schedule_paid_cycle``: after the user's latest cycle, so no
day is lost). Shared by every surface; writes one audit row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from nproxy_core.accounts.models import User
from nproxy_core.audit import Actor
from nproxy_core.billing.activation import activate_cycle
from nproxy_core.billing.cycles import add_months
from nproxy_core.billing.models import BalanceSource, BillingCycle, PackBalance, Plan
from nproxy_core.billing.packs import balance_view, grant_pack
from nproxy_core.billing.plans import _positive
from nproxy_core.billing.presenters import isoformat
from nproxy_core.billing.review import clean_note
from nproxy_core.db import utcnow
from nproxy_core.errors import NotFound

__all__ = ["cycle_view", "grant_cycle", "grant_units"]

REASON_LIMIT = 500


def cycle_view(cycle: BillingCycle) -> dict[str, Any]:
    return {
        "cycle_id": cycle.id,
        "starts_at": isoformat(cycle.starts_at),
        "ends_at": isoformat(cycle.ends_at),
        "plan": cycle.plan.code if cycle.plan is not None else None,
        "request_limit": cycle.request_limit,
        "used": cycle.used,
        "reserved": cycle.reserved,
        "payment_id": cycle.payment_id,
        "grant_reason": cycle.grant_reason,
    }


def grant_cycle(
    db: Session,
    plan: Plan,
    user_id: int,
    *,
    reason: Any,
    actor: Actor,
    now: dt.datetime | None = None,
) -> BillingCycle:
    """Give the user one cycle of the plan, free; ``reason`` is required and kept with it."""
    reason = clean_note(reason, field="reason", limit=REASON_LIMIT)
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    cycle = activate_cycle(db, plan, user_id, now or utcnow())
    cycle.grant_reason = reason
    db.flush()
    actor.record(
        db,
        "user.grant_cycle",
        "user",
        user_id,
        None,
        {"email": user.email, "reason": reason, **cycle_view(cycle)},
    )
    return cycle


def grant_units(
    db: Session,
    user_id: int,
    *,
    units: Any,
    months: Any,
    reason: Any,
    actor: Actor,
    now: dt.datetime | None = None,
) -> PackBalance:
    """An admin's gift of ``units`` valid ``months`` calendar months: a pack balance of its
    own (``source = grant``), drawn on like a bought pack. ``reason`` is required and kept in
    the audit row ``pack.grant``."""
    units = _positive("units", units)
    months = _positive("months", months)
    reason = clean_note(reason, field="reason", limit=REASON_LIMIT)
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    now = now or utcnow()
    balance = grant_pack(
        db,
        user_id,
        units=units,
        label="Granted units",
        expires_at=add_months(now, months),
        source=BalanceSource.GRANT,
        now=now,
    )
    actor.record(
        db,
        "pack.grant",
        "user",
        user_id,
        None,
        {"email": user.email, "reason": reason, **balance_view(balance)},
    )
    return balance
