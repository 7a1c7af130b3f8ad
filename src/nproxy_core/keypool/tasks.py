"""Key pool background jobs: the periodic balance refresh."""

from __future__ import annotations

from typing import Any

from nproxy_core.keypool.interfaces import IKeyPoolRouter
from nproxy_core.tasks import task

#: How often ``nproxy beat`` refreshes balances, unless ``nproxy.keypool.balance_interval_seconds``.
DEFAULT_BALANCE_INTERVAL = 15 * 60


@task(name="nproxy_core.keypool.refresh_balances")
def refresh_balances(request: Any) -> int:
    """Read the balances of keys whose provider can; a zero balance takes a key out.

    Returns how many balances were read.
    """
    balances = request.find_service(IKeyPoolRouter).refresh_balances()
    return sum(1 for value in balances.values() if value is not None)
