"""Worker liveness: each worker process draws an id when it starts and says it is alive every few
seconds, from a thread and a database connection of its own, so that the jobs it runs are never
taken from it while it lives, and are taken up soon after it dies.

Why not per-job leases renewed by the worker: a renewal shares the worker's pool and CPU with
hundreds of task threads, and once it lapsed on a live job (a loaded machine, a busy pool) the
job ran again or waited out the lease. Here one small UPDATE every
``lost_after_seconds / 5`` (default 3 s) on a held connection says "this process lives" for every
job it runs; a process not heard from for ``nproxy.worker.lost_after_seconds`` (default 15) is
taken for dead, and its jobs are another run's (:func:`heard_from` is the rule).

Clocks: the beat and the rule both read the hosts' clocks (as the leases did), so the hosts of
one deployment keep their clocks in step (NTP); a skew well below ``lost_after_seconds`` is
harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import uuid
from typing import Any

import sqlalchemy as sa
from celery import bootsteps
from zope.interface import Attribute, Interface, implementer

from nproxy_core.db import create_engine, utcnow
from nproxy_core.health.models import WorkerProcess
from nproxy_core.plugins import positive_float, setting
from nproxy_core.wiring import find_service

log = logging.getLogger(__name__)

#: A worker process not heard from for this long is taken for dead.
LOST_AFTER_SECONDS = 15.0
#: Beats per ``lost_after_seconds``: four may be missed before a live worker looks dead.
BEATS_PER_WINDOW = 5
#: Rows of processes not heard from for this long are removed by the beats of the living.
FORGET_AFTER = dt.timedelta(days=1)

_TABLE = WorkerProcess.__table__


def lost_after_seconds(settings: Any) -> float:
    """``nproxy.worker.lost_after_seconds``: silence after which a worker is taken for dead."""
    return setting(
        settings,
        "nproxy.worker.lost_after_seconds",
        default=LOST_AFTER_SECONDS,
        cast=positive_float,
    )


def heard_from(worker_id: Any, now: dt.datetime, lost_after: float) -> sa.ColumnElement[bool]:
    """SQL: the worker process ``worker_id`` (a column or a value) beat within ``lost_after``
    seconds of ``now``. The one rule for whether a job's worker still runs it."""
    return sa.exists().where(
        _TABLE.c.id == worker_id,
        _TABLE.c.last_seen_at >= now - dt.timedelta(seconds=lost_after),
    )


class IWorkerLiveness(Interface):
    """This process's worker identity, once it beats (one per configuration)."""

    worker_id = Attribute("the id this process beats under, or None (no worker runs here)")
    lost_after = Attribute("seconds of silence after which a worker is taken for dead")

    def start(hostname: str) -> str:  # type: ignore[misc]
        """Record this process, then beat from a thread of its own; returns its id."""


@implementer(IWorkerLiveness)
class WorkerLiveness:
    """Beats for this process from a daemon thread on a connection of its own.

    It beats until the process exits, not until Celery stops: a warm shutdown finishes the
    jobs in flight first, and they must stay this process's meanwhile.
    """

    def __init__(self, settings: Any, lost_after: float) -> None:
        self._settings = settings
        self.lost_after = lost_after
        self.interval = lost_after / BEATS_PER_WINDOW
        self.worker_id: str | None = None
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    def start(self, hostname: str) -> str:
        with self._lock:
            if self.worker_id is not None:
                return self.worker_id
            self._engine = _own_engine(self._settings)
            worker_id = uuid.uuid4().hex
            now = utcnow()
            # Recorded before any job can name it: a job naming an unknown process is free.
            with self._engine.begin() as conn:
                conn.execute(
                    _TABLE.insert().values(
                        id=worker_id,
                        hostname=hostname[:255],
                        pid=os.getpid(),
                        started_at=now,
                        last_seen_at=now,
                    )
                )
            self.worker_id = worker_id
            threading.Thread(target=self._run, name="nproxy-liveness", daemon=True).start()
            log.info("worker process %s beats every %.1f s", worker_id, self.interval)
            return worker_id

    def _run(self) -> None:
        stop = threading.Event()  # never set: the thread ends with the process
        while not stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:
                # Logged without a traceback: during an outage this repeats every few seconds.
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.warning("worker liveness: could not beat: %s", first_line[:300])

    def beat(self, now: dt.datetime | None = None) -> None:
        assert self._engine is not None and self.worker_id is not None
        now = now or utcnow()
        with self._engine.begin() as conn:
            conn.execute(
                _TABLE.update().where(_TABLE.c.id == self.worker_id).values(last_seen_at=now)
            )
            conn.execute(_TABLE.delete().where(_TABLE.c.last_seen_at < now - FORGET_AFTER))


def _own_engine(settings: Any) -> sa.Engine:
    # One held connection, outside the pools the task threads wait on: a busy pool must not
    # make a live worker look dead. A connection found dead is replaced at the next beat.
    url = sa.make_url(settings["sqlalchemy.url"])
    if url.get_backend_name() == "sqlite":
        return create_engine(settings, poolclass=sa.pool.NullPool)
    return create_engine(settings, pool_size=1, max_overflow=0, pool_pre_ping=True, pool_timeout=5)


class Liveness(bootsteps.StartStopStep):
    """Starts this worker process's beat as the worker starts, before it takes any task."""

    label = "nproxy liveness"

    def start(self, worker: Any) -> None:
        find_service(worker.app.pyramid_registry, IWorkerLiveness).start(worker.hostname)


def liveness_service(request: Any) -> WorkerLiveness:
    settings = request.registry.settings
    return WorkerLiveness(settings, lost_after_seconds(settings))


__all__ = [
    "IWorkerLiveness",
    "Liveness",
    "WorkerLiveness",
    "heard_from",
    "lost_after_seconds",
]
