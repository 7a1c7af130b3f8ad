"""Expiry warnings: an email 3 days and 1 day before a cycle ends, once each."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from pyramid.request import Request
from sqlalchemy.orm import Session

from nproxy_core.billing.models import BillingCycle
from nproxy_core.billing.subscriptions import renewing_subscription
from nproxy_core.config import public_url
from nproxy_core.db import utcnow
from nproxy_core.i18n.localizers import localizer_for
from nproxy_core.notifications import send_email

WARNINGS = (
    ("1d", dt.timedelta(days=1), "warned_1d_at", "tomorrow"),
    ("3d", dt.timedelta(days=3), "warned_3d_at", "in 3 days"),
)


def send_expiry_warnings(request: Request, now: dt.datetime | None = None) -> int:
    """Email users whose cycle ends within 3 days, then within 1 day: once each.

    A cycle already followed by a renewal, or of a user whose subscription renews by itself,
    gets no warning (its flags are still set). When the job first sees a cycle already inside
    the last day, only the 1-day warning goes out.
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
        # A subscription that renews by itself (DESIGN 4.16) does not end: nothing to warn of.
        if renewed or user.is_blocked or renewing_subscription(db, cycle.user_id) is not None:
            continue
        send_email(
            request,
            user.email,
            "plan_ending",
            {
                "when": when,
                "ends": cycle.ends_at.strftime("%Y-%m-%d %H:%M UTC"),
                "plan": cycle.plan,
                "pricing_url": public_url(request, "pricing"),
                "kind": kind,
                "localizer": localizer_for(request.registry, user.language),
            },
        )
        sent += 1
    return sent
