"""Key pool background jobs: the periodic balance refresh, and closing the alerts of projects
whose daily quota reset."""

from __future__ import annotations

from typing import Any

from nproxy_core.db import utcnow
from nproxy_core.keypool.interfaces import IKeyPoolRouter
from nproxy_core.keypool.rested import resolve_rested_daily_quotas
from nproxy_core.tasks import task
from nproxy_core.telegram import IAlertNotifier

#: How often ``nproxy beat`` refreshes balances, unless ``nproxy.keypool.balance_interval_seconds``.
DEFAULT_BALANCE_INTERVAL = 15 * 60
#: How often ``nproxy beat`` looks for daily-quota alerts whose project is back in service.
RESTED_ALERTS_INTERVAL = 60


@task(name="nproxy_core.keypool.refresh_balances")
def refresh_balances(request: Any) -> int:
    """Read the balances of keys whose provider can; a zero balance takes a key out.

    Returns how many balances were read.
    """
    balances = request.find_service(IKeyPoolRouter).refresh_balances()
    return sum(1 for value in balances.values() if value is not None)


@task(name="nproxy_core.keypool.resolve_rested_alerts")
def resolve_rested_alerts(request: Any) -> int:
    """Close the "out of daily quota" alerts of projects that rest no more (the admins are told
    "resolved"); returns how many."""
    return resolve_rested_daily_quotas(request.db, request.find_service(IAlertNotifier), utcnow())
