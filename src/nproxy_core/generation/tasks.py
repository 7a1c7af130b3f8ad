"""The generation jobs: ``run_generation`` (one job, by id) and the periodic sweeper, which a
worker also runs once as it starts (jobs may have been left behind while it was down)."""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
from pyramid.registry import Registry

from nproxy_core.db import IDatabase
from nproxy_core.generation.interfaces import ICompletionSignal, IGenerationSettings, IJobRunner
from nproxy_core.generation.sweeper import SweepReport, sweep
from nproxy_core.storage import IStorage
from nproxy_core.tasks import task, task_sender
from nproxy_core.wiring import prepare_request

log = logging.getLogger(__name__)


# Sent again until the database answers: a run that stopped half way may hold the job, and
# only its successor (with its claim token in ``resume``) takes it over while the worker lives.
@task(name="generation.run", unreachable_retries=None)
def run_generation(
    request: Any,
    generation_id: str,
    resume: str | None = None,
    resume_images: list[list[Any]] | None = None,
) -> str:
    """Run one generation job. Safe to deliver twice: the claim lets only one run work."""
    # The runner opens its own short transactions; the task's own (request.db) stays unused,
    # so no transaction is open while the provider works.
    return request.find_service(IJobRunner).run(
        generation_id,
        request.find_service(IStorage),
        resume=resume,
        resume_images=resume_images,
    )


def sweep_now(registry: Registry) -> SweepReport:
    """One pass of the sweeper on this configuration, sending jobs with its Celery app."""
    request = prepare_request(registry)
    return sweep(
        request.find_service(IDatabase).session_factory,
        request.find_service(IGenerationSettings),
        task_sender(registry, run_generation),
        announce=request.find_service(ICompletionSignal).announce,
    )


@task(name="generation.sweep")
def sweep_generations(request: Any) -> dict[str, int]:
    """Re-send lost jobs, re-run those of dead workers, release what finished jobs held."""
    return sweep_now(request.registry).as_dict()


@signals.worker_ready.connect(weak=False)
def _sweep_on_worker_start(sender: Any = None, **_: Any) -> None:
    # Jobs queued while no worker ran, or whose send failed, need not wait for beat.
    app = getattr(sender, "app", None)
    registry = getattr(app, "pyramid_registry", None)
    if registry is None:
        return
    try:
        sweep_now(registry)
    except Exception:
        log.exception("the start-up sweep failed; beat's next sweep will do it")
