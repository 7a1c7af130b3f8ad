"""The generation pipeline's settings (``nproxy.generation.*``), read and checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zope.interface import implementer

from nproxy_core.generation.interfaces import IGenerationSettings
from nproxy_core.plugins import one_of, positive_float, positive_int, setting


@implementer(IGenerationSettings)
@dataclass(frozen=True)
class GenerationSettings:
    #: How long a claimed job stays ours without a renewal. The run renews it every third of
    #: this while it works, so it only bounds how soon a job of a dead worker is run again.
    lease_seconds: float = 120.0
    #: How often ``nproxy beat`` runs the sweeper.
    sweep_interval_seconds: float = 30.0
    #: A job still queued (or with an expired lease) this long after it was last sent to the
    #: queue is sent again: its message was lost, or the send after commit failed.
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
        p = "nproxy.generation."
        return cls(
            lease_seconds=setting(
                settings, p + "lease_seconds", default=d.lease_seconds, cast=positive_float
            ),
            sweep_interval_seconds=setting(
                settings,
                p + "sweep_interval_seconds",
                default=d.sweep_interval_seconds,
                cast=positive_float,
            ),
            requeue_after_seconds=setting(
                settings,
                p + "requeue_after_seconds",
                default=d.requeue_after_seconds,
                cast=positive_float,
            ),
            max_attempts=setting(
                settings, p + "max_attempts", default=d.max_attempts, cast=positive_int
            ),
            image_threads=setting(
                settings, p + "image_threads", default=d.image_threads, cast=positive_int
            ),
            completion_signal=setting(
                settings,
                p + "completion_signal",
                default=d.completion_signal,
                cast=one_of("auto", "postgres", "local"),
            ),
        )
