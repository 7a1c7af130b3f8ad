"""The quota ledger: reservations on the current billing cycle, settled when a generation
ends; users see only a bucket of what is left (DESIGN 4.3)."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    from nproxy_core.quota.tasks import release_abandoned_holds

    config.add_periodic_task("quota.release_abandoned_holds", release_abandoned_holds, 600)
