"""The generation pipeline's settings (``nproxy.generation.*``), read and checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zope.interface import implementer

from nproxy_core.generation.interfaces import IGenerationSettings
from nproxy_core.health.liveness import LOST_AFTER_SECONDS, lost_after_seconds
from nproxy_core.plugins import one_of, positive_float, positive_int, setting


@implementer(IGenerationSettings)
@dataclass(frozen=True)
class GenerationSettings:
    #: How long a job claimed outside a worker (a command, a test) stays its run's without a
    #: renewal; the run renews it every third of this while it works. A worker's jobs have no
    #: lease: they are its own while it beats (``nproxy.worker.lost_after_seconds``).
    lease_seconds: float = 120.0
    #: ``nproxy.worker.lost_after_seconds``: a job whose worker process has not beaten for this
    #: long is another run's (read here so the claim and the sweeper share it).
    lost_after_seconds: float = LOST_AFTER_SECONDS
    #: How often ``nproxy beat`` runs the sweeper: with the default 15 s of silence, a dead
    #: worker's jobs are sent again within 20 s of its death.
    sweep_interval_seconds: float = 5.0
    #: A job still queued this long after it was last sent to the queue is sent again: its
    #: message was lost, or the send after commit failed. (An abandoned job is sent again at
    #: the first sweep that finds it.)
    requeue_after_seconds: float = 60.0
    #: Runs a job may start before it is given up as failed (a job that kills its worker
    #: every time must not go round forever).
    max_attempts: int = 3
    #: Threads per process for the images of batches (single images run on the task's own).
    image_threads: int = 256
    #: What wakes requests waiting for a job: ``postgres`` (LISTEN/NOTIFY), ``local`` (in one
    #: process: ``nproxy dev``) or ``auto`` (postgres on PostgreSQL, local otherwise).
    completion_signal: str = "auto"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> GenerationSettings:
        """Read ``nproxy.generation.*``; raises ConfigurationError naming a bad setting."""
        d = cls()
        casts = {
            "lease_seconds": positive_float,
            "sweep_interval_seconds": positive_float,
            "requeue_after_seconds": positive_float,
            "max_attempts": positive_int,
            "image_threads": positive_int,
            "completion_signal": one_of("auto", "postgres", "local"),
        }
        return cls(
            lost_after_seconds=lost_after_seconds(settings),
            **{
                name: setting(
                    settings, "nproxy.generation." + name, default=getattr(d, name), cast=cast
                )
                for name, cast in casts.items()
            },
        )
