"""What the admin's health views ask of the running system: the queue's depth, whether each
service answers (and how fast), and the workers' heartbeats.

Every probe is bounded in time and reports a failure as a value, never an exception: the page
that shows a broken broker must itself still load.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from pyramid.registry import Registry
from sqlalchemy.orm import Session

from nproxy_core.db import IDatabase, utcnow
from nproxy_core.health.heartbeat import STALE_AFTER
from nproxy_core.health.models import WorkerHeartbeat
from nproxy_core.storage import IStorage
from nproxy_core.tasks import CELERY_APP
from nproxy_core.wiring import find_service

log = logging.getLogger(__name__)

#: Seconds a broker probe may take to connect.
BROKER_TIMEOUT_SECONDS = 3.0
#: A key no object is ever stored under: asking whether it exists proves storage answers.
STORAGE_PROBE_KEY = "health/probe"


@dataclasses.dataclass(frozen=True)
class ServiceCheck:
    """One service's answer: up or down, how long the question took, and what went wrong."""

    name: str
    ok: bool
    latency_ms: int
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class QueueDepth:
    """Messages waiting in each queue, or the error that kept the broker from saying."""

    queues: dict[str, int]
    error: str | None = None
    #: How long the broker took to answer.
    latency_ms: int = 0

    @property
    def total(self) -> int | None:
        return None if self.error is not None else sum(self.queues.values())


@dataclasses.dataclass(frozen=True)
class WorkerStatus:
    hostname: str
    pid: int
    started_at: dt.datetime
    last_seen_at: dt.datetime
    stopped_at: dt.datetime | None
    concurrency: int | None
    active: int
    processed: int
    #: Heard from within :data:`STALE_AFTER`.
    alive: bool

    @property
    def state(self) -> str:
        if self.alive:
            return "alive"
        return "stopped" if self.stopped_at is not None else "silent"


def _timed(name: str, probe: Callable[[], str]) -> ServiceCheck:
    started = time.monotonic()
    try:
        detail = probe()
    except Exception as exc:
        log.warning("health check of %s failed: %s", name, exc)
        # The class and the message, never a traceback; service URLs are not in either.
        return ServiceCheck(name, False, _since(started), f"{type(exc).__name__}: {exc}"[:300])
    return ServiceCheck(name, True, _since(started), detail)


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def queue_names(registry: Registry) -> list[str]:
    """The queues tasks are sent to: the default one and any declared in the settings."""
    conf = registry[CELERY_APP].conf
    names = [conf.task_default_queue]
    for queue in conf.task_queues or ():
        if queue.name not in names:
            names.append(queue.name)
    return names


def _declare_passive(channel: Any, name: str) -> int:
    """Messages waiting in queue ``name``, asked without creating it (a passive declare)."""
    from amqp.exceptions import ChannelError, NotFound

    try:
        return int(channel.queue_declare(queue=name, passive=True).message_count)
    except (NotFound, ChannelError) as exc:
        # No such queue yet: nothing was ever sent to it, so nothing waits.
        if getattr(exc, "code", None) == 404 or "NOT_FOUND" in str(exc):
            return 0
        raise


def queue_depth(registry: Registry) -> QueueDepth:
    """How many messages wait in each task queue: RabbitMQ's own count in production, the
    embedded transport's (the queue folder, the in-memory queue) in development."""
    app = registry[CELERY_APP]
    counts: dict[str, int] = {}
    started = time.monotonic()
    try:
        with app.connection_for_read(connect_timeout=BROKER_TIMEOUT_SECONDS) as connection:
            # One try: a page waits for this, and a broker that is down is the answer.
            connection.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
            for name in queue_names(registry):
                # A failed passive declare closes the channel (AMQP): one channel per queue.
                channel = connection.channel()
                try:
                    counts[name] = _declare_passive(channel, name)
                finally:
                    _close_quietly(channel)
    except Exception as exc:
        log.warning("queue depth: the broker did not answer: %s", exc)
        return QueueDepth(counts, f"{type(exc).__name__}: {exc}"[:300], _since(started))
    return QueueDepth(counts, None, _since(started))


def _close_quietly(channel: Any) -> None:
    try:
        channel.close()
    except Exception:  # a channel the broker closed already
        log.debug("closing a probe channel failed", exc_info=True)


def check_database(registry: Registry) -> ServiceCheck:
    engine = find_service(registry, IDatabase).engine

    def probe() -> str:
        # Its own connection, outside any request transaction: the probe holds no locks.
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return engine.dialect.name

    return _timed("database", probe)


def check_broker(registry: Registry, depth: QueueDepth | None = None) -> ServiceCheck:
    """The broker, judged by a queue-depth probe (``depth``, or a new one)."""
    depth = depth if depth is not None else queue_depth(registry)
    if depth.error is not None:
        return ServiceCheck("broker", False, depth.latency_ms, depth.error)
    transport = registry[CELERY_APP].conf.broker_url.split("://", 1)[0] or "memory"
    return ServiceCheck("broker", True, depth.latency_ms, f"{transport}, {depth.total} waiting")


def check_storage(registry: Registry) -> ServiceCheck:
    storage = find_service(registry, IStorage)

    def probe() -> str:
        storage.exists(STORAGE_PROBE_KEY)
        return registry.settings.get("nproxy.storage", "")

    return _timed("storage", probe)


def check_services(registry: Registry, depth: QueueDepth | None = None) -> list[ServiceCheck]:
    """Database, broker (from ``depth`` when the caller probed it already) and storage."""
    return [check_database(registry), check_broker(registry, depth), check_storage(registry)]


def worker_statuses(db: Session, now: dt.datetime | None = None) -> list[WorkerStatus]:
    """Every worker heard from in the last week, the most recently seen first."""
    now = now or utcnow()
    rows = db.scalars(
        sa.select(WorkerHeartbeat).order_by(
            WorkerHeartbeat.last_seen_at.desc(), WorkerHeartbeat.hostname
        )
    ).all()
    return [
        WorkerStatus(
            hostname=row.hostname,
            pid=row.pid,
            started_at=row.started_at,
            last_seen_at=row.last_seen_at,
            stopped_at=row.stopped_at,
            concurrency=row.concurrency,
            active=row.active,
            processed=row.processed,
            alive=row.stopped_at is None and now - row.last_seen_at <= STALE_AFTER,
        )
        for row in rows
    ]


__all__ = [
    "QueueDepth",
    "ServiceCheck",
    "WorkerStatus",
    "check_services",
    "queue_depth",
    "worker_statuses",
]
