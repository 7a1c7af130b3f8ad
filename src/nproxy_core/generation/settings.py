"""The generation pipeline's settings (``nproxy.generation.*``), read and checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nproxy_core.plugins import setting

REGISTRY_KEY = "nproxy.generation.settings"


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


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

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> GenerationSettings:
        """Read ``nproxy.generation.*``; raises PluginSettingError naming a bad setting."""
        d = cls()
        p = "nproxy.generation."
        return cls(
            lease_seconds=setting(
                settings, p + "lease_seconds", default=d.lease_seconds, cast=_positive_float
            ),
            sweep_interval_seconds=setting(
                settings,
                p + "sweep_interval_seconds",
                default=d.sweep_interval_seconds,
                cast=_positive_float,
            ),
            requeue_after_seconds=setting(
                settings,
                p + "requeue_after_seconds",
                default=d.requeue_after_seconds,
                cast=_positive_float,
            ),
            max_attempts=setting(
                settings, p + "max_attempts", default=d.max_attempts, cast=_positive_int
            ),
            image_threads=setting(
                settings, p + "image_threads", default=d.image_threads, cast=_positive_int
            ),
        )


def get_settings(registry: Any) -> GenerationSettings:
    return registry.get(REGISTRY_KEY) or GenerationSettings()
