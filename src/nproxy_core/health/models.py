"""Worker heartbeats: each worker process says it is alive, so an admin can see one that is not,
and so that the jobs of one that died are taken up by another."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, utcnow


class WorkerHeartbeat(Base):
    """The last sign of life of one worker, by its Celery node name (``celery@host``).

    A restarted worker reuses its row. A clean stop sets ``stopped_at``; a worker that died
    simply stops beating, which is what the admin's red light is for.
    """

    __tablename__ = "worker_heartbeats"

    hostname: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    pid: Mapped[int]
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[dt.datetime | None]
    #: Tasks the worker can run at once, and was running at its last beat.
    concurrency: Mapped[int | None]
    active: Mapped[int] = mapped_column(default=0)
    #: Tasks it has finished since it started (Celery's own count).
    processed: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class WorkerProcess(Base):
    """One worker process, by an id it draws when it starts, and when it was last heard from.

    A running job names the process that runs it (``generations.worker_id``); it is another
    run's to take only once that process has not been heard from for
    ``nproxy.worker.lost_after_seconds`` (:mod:`nproxy_core.health.liveness`). A restarted
    worker draws a new id, so the jobs of the process that died are free at once.
    """

    __tablename__ = "worker_processes"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    #: The Celery node name (``celery@host``) and process id, for people reading the table.
    hostname: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int]
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
