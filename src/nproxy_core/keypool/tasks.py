"""Key pool background jobs: the periodic balance refresh, and closing the pool's alerts whose
condition cleared."""

from __future__ import annotations

from typing import Any

from nproxy_core.alerts import IAlertNotifier
from nproxy_core.db import utcnow
from nproxy_core.keypool.interfaces import IKeyPoolRouter
from nproxy_core.keypool.recovered import resolve_recovered
from nproxy_core.tasks import task

#: How often ``nproxy beat`` refreshes balances, unless ``nproxy.keypool.balance_interval_seconds``.
DEFAULT_BALANCE_INTERVAL = 15 * 60
#: How often ``nproxy beat`` looks for pool alerts that cleared (see :mod:`.recovered`).
RECOVERED_ALERTS_INTERVAL = 60


@task(name="nproxy_core.keypool.refresh_balances")
def refresh_balances(request: Any) -> int:
    """Read the balances of keys whose provider can; a zero balance takes a key out.

    Returns how many balances were read.
    """
    balances = request.find_service(IKeyPoolRouter).refresh_balances()
    return sum(1 for value in balances.values() if value is not None)


@task(name="nproxy_core.keypool.resolve_recovered_alerts")
def resolve_recovered_alerts(request: Any) -> int:
    """Close the pool's alerts whose condition cleared in any process: a project out of daily
    quota back in service, a provider making images again. Returns how many."""
    return resolve_recovered(request.db, request.find_service(IAlertNotifier), utcnow())
