"""What a user sees of their subscription and quota: a status and a bucket, never a count."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.accounts.interfaces import ISubscriptionSummary
from nproxy_core.billing.models import BillingCycle
from nproxy_core.billing.presenters import isoformat
from nproxy_core.db import utcnow
from nproxy_core.quota.services import bucket, current_cycle


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
class SubscriptionSummary:
    """The real subscription state for the dashboard and ``/api/v1/me``."""

    def summary(self, request: Any, user: Any) -> dict[str, Any]:
        return subscription_summary(request.db, user.id)
