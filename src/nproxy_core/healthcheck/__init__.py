"""The container healthchecks of the long-running processes (worker, beat, bot).

Each process touches a heartbeat file of its own in the state folder (``nproxy.state_dir``,
``NPROXY_STATE_DIR``) every :data:`INTERVAL_SECONDS`, from the loop that does its work (the
worker's consumer, beat's scheduler, the bot's event loop), so a process that hangs goes stale
as surely as one that died. ``nproxy health NAME`` (:mod:`.cli`) reads the file: a healthcheck
needs neither the database nor the broker, and says what is wrong in one line. The file is
removed when the process stops cleanly.

The database heartbeats of :mod:`nproxy_core.health` are another thing: rows the admin views
and the job runner read, for every worker of the deployment; these files are per container.

Only the standard library at import: a healthcheck imports this every half minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: How often a process touches its heartbeat file.
INTERVAL_SECONDS = 10.0
#: A heartbeat older than this is stale: several intervals, so a busy machine is not "down".
STALE_AFTER_SECONDS = 60.0
#: The processes that keep a heartbeat file.
PROCESSES = ("worker", "beat", "bot")


def state_dir(settings: Mapping[str, Any]) -> Path:
    """The folder where processes keep their state (``normalize_settings`` gives a default)."""
    return Path(settings["nproxy.state_dir"])


def heartbeat_path(settings: Mapping[str, Any], process: str) -> Path:
    return state_dir(settings) / f"{process}.heartbeat"


class HeartbeatFile:
    """A process's heartbeat: a file whose modification time is the last beat."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failing = False

    def beat(self) -> None:
        """Touch the file (creating its folder). Never raises: a beat that cannot be written
        makes the healthcheck fail, which says more than a crashed process would."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            temporary.write_text(f"{os.getpid()}\n")
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot write the heartbeat file %s: %s", self.path, exc.strerror)
            self._failing = True
        else:
            if self._failing:
                log.info("heartbeat file %s written again", self.path)
            self._failing = False

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def beat_forever(self, interval: float = INTERVAL_SECONDS) -> None:
        """Beat on an asyncio loop until cancelled (the bot), then remove the file."""
        try:
            while True:
                self.beat()
                await asyncio.sleep(interval)
        finally:
            self.remove()


def check(
    path: Path, max_age: float = STALE_AFTER_SECONDS, now: float | None = None
) -> tuple[bool, str]:
    """Whether the heartbeat at ``path`` is fresh, and one line saying how it is."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return False, f"no heartbeat at {path} (not started yet, or stopped)"
    except OSError as exc:
        return False, f"cannot read the heartbeat at {path}: {exc.strerror}"
    age = max(0.0, (time.time() if now is None else now) - modified)
    if age > max_age:
        return False, f"last heartbeat {age:.0f} s ago at {path} (stale after {max_age:.0f} s)"
    return True, f"alive (last heartbeat {age:.0f} s ago)"


def includeme(config: Any) -> None:
    from nproxy_core.healthcheck.steps import HeartbeatScheduler, WorkerHeartbeatFile
    from nproxy_core.tasks import CELERY_APP

    # Every worker of this configuration beats while it takes tasks; ``nproxy beat`` runs the
    # scheduler that beats (an embedded beat, ``nproxy dev``'s, keeps Celery's own).
    app = config.registry[CELERY_APP]
    app.steps["consumer"].add(WorkerHeartbeatFile)
    app.conf.beat_scheduler = HeartbeatScheduler
