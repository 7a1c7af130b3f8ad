"""Worker heartbeats: a Celery worker bootstep that writes the worker's row every half minute
(``nproxy.worker.heartbeat_seconds``, default 30).

The beat runs on the worker's own timer, so a worker whose machinery is stuck stops beating as
surely as one that died; the admin views show a worker red after :data:`STALE_AFTER` without a
beat. Writing the beat never fails the worker: a database that does not answer only costs
that beat (logged).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

import sqlalchemy as sa
from celery import bootsteps
from sqlalchemy.orm import Session, sessionmaker

from nproxy_core.db import IDatabase, utcnow
from nproxy_core.health.models import WorkerHeartbeat
from nproxy_core.plugins import positive_float, setting
from nproxy_core.wiring import find_service

log = logging.getLogger(__name__)

#: How often a worker beats.
INTERVAL_SECONDS = 30.0
#: A worker not heard from for this long is shown as down (DESIGN 4.7, 4.8: two minutes).
STALE_AFTER = dt.timedelta(minutes=2)
#: Rows of workers not seen for this long are removed by the beats of the living.
FORGET_AFTER = dt.timedelta(days=7)

_TABLE = WorkerHeartbeat.__table__


def _upsert(session: Session, values: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(_TABLE).values(**values)
    changed = {k: statement.excluded[k] for k in values if k not in ("hostname", "started_at")}
    session.execute(statement.on_conflict_do_update(index_elements=["hostname"], set_=changed))


def _interval(value: Any) -> float:
    seconds = positive_float(value)
    # Slower than this, a healthy worker would blink red between two beats.
    if seconds > STALE_AFTER.total_seconds() / 2:
        raise ValueError(value)
    return seconds


def interval_seconds(settings: Any) -> float:
    """How often workers beat: ``nproxy.worker.heartbeat_seconds``, default 30, at most 60."""
    return setting(
        settings, "nproxy.worker.heartbeat_seconds", default=INTERVAL_SECONDS, cast=_interval
    )


def beat(
    session_factory: sessionmaker[Session],
    hostname: str,
    *,
    started_at: dt.datetime,
    concurrency: int | None,
    active: int,
    processed: int,
    now: dt.datetime | None = None,
) -> None:
    """Record that worker ``hostname`` is alive now."""
    now = now or utcnow()
    with session_factory.begin() as session:
        _upsert(
            session,
            {
                "hostname": hostname[:255],
                "pid": os.getpid(),
                "started_at": started_at,
                "last_seen_at": now,
                "stopped_at": None,
                "concurrency": concurrency,
                "active": active,
                "processed": processed,
            },
        )
        session.execute(sa.delete(_TABLE).where(_TABLE.c.last_seen_at < now - FORGET_AFTER))


def stopped(session_factory: sessionmaker[Session], hostname: str) -> None:
    with session_factory.begin() as session:
        session.execute(
            sa.update(_TABLE)
            .where(_TABLE.c.hostname == hostname[:255], _TABLE.c.pid == os.getpid())
            .values(stopped_at=utcnow(), active=0)
        )


def _worker_counts() -> tuple[int, int]:
    """(tasks running now, tasks finished since start) from Celery's worker state."""
    from celery.worker import state

    return len(state.active_requests), sum(state.total_count.values())


class Heartbeat(bootsteps.StartStopStep):
    """Beats once at start, then every :data:`INTERVAL_SECONDS` on the worker's timer."""

    requires = {"celery.worker.components:Timer"}
    label = "nproxy heartbeat"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._timer_ref: Any = None
        self._started_at = utcnow()
        self._session_factory: sessionmaker[Session] | None = None

    def start(self, worker: Any) -> None:
        registry = worker.app.pyramid_registry
        interval = interval_seconds(registry.settings)
        self._session_factory = find_service(registry, IDatabase).session_factory
        self._started_at = utcnow()
        self.beat(worker)
        self._timer_ref = worker.timer.call_repeatedly(interval, self.beat, (worker,))

    def beat(self, worker: Any) -> None:
        if self._session_factory is None:
            return
        active, processed = _worker_counts()
        try:
            beat(
                self._session_factory,
                worker.hostname,
                started_at=self._started_at,
                concurrency=getattr(worker, "concurrency", None),
                active=active,
                processed=processed,
            )
        except Exception:
            log.exception("could not record this worker's heartbeat")

    def stop(self, worker: Any) -> None:
        if self._timer_ref is not None:
            self._timer_ref.cancel()
            self._timer_ref = None
        if self._session_factory is None:
            return
        try:
            stopped(self._session_factory, worker.hostname)
        except Exception:
            log.exception("could not record that this worker stopped")

    def terminate(self, worker: Any) -> None:
        self.stop(worker)
