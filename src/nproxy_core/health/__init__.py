"""Health of the running system: worker heartbeats (:mod:`.heartbeat`) and the probes the admin
views and the Telegram bot ask (:mod:`.probes`): queue depth, services, workers."""

from __future__ import annotations

from typing import Any

from nproxy_core.health.heartbeat import INTERVAL_SECONDS, STALE_AFTER, Heartbeat
from nproxy_core.plugins import positive_float, setting
from nproxy_core.tasks import CELERY_APP

__all__ = ["STALE_AFTER"]


def includeme(config: Any) -> None:
    # A malformed interval stops start-up here, not in a worker much later.
    setting(
        config.get_settings(),
        "nproxy.worker.heartbeat_seconds",
        default=INTERVAL_SECONDS,
        cast=positive_float,
    )
    # Every worker of this configuration (``nproxy worker``, ``nproxy dev``'s embedded one)
    # records its heartbeat; the web process never does.
    config.registry[CELERY_APP].steps["worker"].add(Heartbeat)
