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
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.quota.services import bucket, current_cycle, max_batch_now


def subscription_summary(
    db: Session,
    user_id: int,
    now: dt.datetime | None = None,
    *,
    provider_max_batch: int | None = None,
) -> dict:
    """``{"subscription": {"status", "current_period_end"}, "quota": {"bucket",
    "max_batch_now"}}``: no counts, except ``max_batch_now`` (DESIGN 4.3), which is exact only
    when fewer than ``provider_max_batch`` requests remain; only given with that argument."""
    now = now or utcnow()
    cycle = current_cycle(db, user_id, now)
    if cycle is not None:
        quota: dict[str, int] = {"bucket": bucket(cycle.remaining, cycle.request_limit)}
        if provider_max_batch is not None:
            quota["max_batch_now"] = max_batch_now(cycle.remaining, provider_max_batch)
        return {
            "subscription": {"status": "active", "current_period_end": isoformat(cycle.ends_at)},
            "quota": quota,
        }
    last_end = db.scalar(
        sa.select(sa.func.max(BillingCycle.ends_at)).where(
            BillingCycle.user_id == user_id, BillingCycle.ends_at <= now
        )
    )
    status = "none" if last_end is None else "expired"
    return {
        "subscription": {"status": status, "current_period_end": isoformat(last_end)},
        "quota": {"bucket": 0} if provider_max_batch is None else {"bucket": 0, "max_batch_now": 0},
    }


@implementer(ISubscriptionSummary)
class SubscriptionSummary:
    """The real subscription state for the dashboard and ``/api/v1/me``."""

    def summary(self, request: Any, user: Any, batch: bool = False) -> dict[str, Any]:
        return subscription_summary(
            request.db, user.id, provider_max_batch=_provider_max_batch(request) if batch else None
        )


def _provider_max_batch(request: Any) -> int:
    """The largest batch any enabled model takes: what a full batch means for this site."""
    sizes = [
        capabilities.max_batch
        for provider in request.find_service(IPlugins).providers.values()
        for capabilities in provider.capabilities()
    ]
    return max(sizes, default=1)
