"""Health of the running system: worker heartbeats (:mod:`.heartbeat`), worker liveness (which
process runs which job, :mod:`.liveness`) and the probes the admin views and the Telegram bot ask
(:mod:`.probes`): queue depth, services, workers."""

from __future__ import annotations

from typing import Any

from nproxy_core.health.heartbeat import STALE_AFTER, Heartbeat, interval_seconds
from nproxy_core.health.liveness import (
    IWorkerLiveness,
    Liveness,
    liveness_service,
    lost_after_seconds,
)
from nproxy_core.tasks import CELERY_APP
from nproxy_core.wiring import register_shared_service

__all__ = ["STALE_AFTER"]


def includeme(config: Any) -> None:
    # A malformed interval stops start-up here, not in a worker much later.
    interval_seconds(config.get_settings())
    # Every worker of this configuration (``nproxy worker``, ``nproxy dev``'s embedded one)
    # records its heartbeat; the web process never does.
    config.registry[CELERY_APP].steps["worker"].add(Heartbeat)
    # ... and beats for its jobs, so they stay its own while it lives (one per process).
    lost_after_seconds(config.get_settings())
    register_shared_service(config, liveness_service, IWorkerLiveness)
    config.registry[CELERY_APP].steps["worker"].add(Liveness)
