"""The quota ledger: reservations on the current billing cycle, settled when a generation
ends; users see only a bucket of what is left (DESIGN 4.3)."""

from __future__ import annotations

from typing import Any

from nproxy_core.accounts.interfaces import ISubscriptionSummary
from nproxy_core.quota.summary import SubscriptionSummary


def includeme(config: Any) -> None:
    # What the dashboard, /api/v1/me and the billing pages show of a subscription and quota.
    config.register_service(SubscriptionSummary(), ISubscriptionSummary)
    # Holds belong to generations: the generation sweeper settles or releases them when their
    # job ends or is given up. A blind release by age would free the hold of a job still
    # waiting in the queue, which would then run and consume nothing.
