"""The generation jobs: ``run_generation`` (one job, by id) and the periodic sweeper, which a
worker also runs once as it starts (jobs may have been left behind while it was down)."""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from nproxy_core.generation.runner import get_runner
from nproxy_core.generation.settings import get_settings
from nproxy_core.generation.sweeper import sweep
from nproxy_core.storage import IStorage
from nproxy_core.tasks import task

log = logging.getLogger(__name__)


@task(name="generation.run")
def run_generation(request: Any, generation_id: str) -> str:
    """Run one generation job. Safe to deliver twice: the claim lets only one run work."""
    # The runner opens its own short transactions; the task's own (request.db) stays unused,
    # so no transaction is open while the provider works.
    return get_runner(request.registry).run(generation_id, request.find_service(IStorage))


def send_generation(generation_id: str) -> None:
    run_generation.apply_async((generation_id,))


@task(name="generation.sweep")
def sweep_generations(request: Any) -> dict[str, int]:
    """Re-send lost jobs, re-run those of dead workers, release what finished jobs held."""
    registry = request.registry
    report = sweep(registry["db.session_factory"], get_settings(registry), send_generation)
    return report.as_dict()


@signals.worker_ready.connect(weak=False)
def _sweep_on_worker_start(sender: Any = None, **_: Any) -> None:
    # Jobs queued while no worker ran, or whose send failed, need not wait for beat.
    app = getattr(sender, "app", None)
    registry = getattr(app, "pyramid_registry", None)
    if registry is None or "db.session_factory" not in registry:
        return
    try:
        sweep(registry["db.session_factory"], get_settings(registry), send_generation)
    except Exception:
        log.exception("the start-up sweep failed; beat's next sweep will do it")
