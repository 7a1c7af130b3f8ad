"""What beat watches itself (DESIGN 4.8): no worker heartbeat for 2 minutes, and a task queue
deeper than ``nproxy.admin.alert_queue_depth``.

These run in a thread of the beat process, not as queued tasks: with no worker alive a queued
check would never run, and the alert it raised would never be sent, since alert delivery is a
worker's task too. So the watch also sends what is due itself, straight after checking.

Each check gives a verdict (the condition holds, or it cleared) or none when it cannot tell
(the broker did not answer; beat started too recently to call workers silent), and the
notifier turns verdicts into stateful alerts: one message per dedup window while it holds,
a "resolved" when it clears.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Sequence
from typing import Any

from pyramid.registry import Registry

from nproxy_core.alerts import AlertKind, IAlertNotifier
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.health import STALE_AFTER, probes
from nproxy_core.plugins import setting
from nproxy_core.telegram.alerts import deliver_due
from nproxy_core.telegram.interfaces import IBotAPI
from nproxy_core.wiring import find_service

log = logging.getLogger(__name__)

#: Seconds between two checks: well inside the 2 minutes a worker may stay silent.
WATCH_INTERVAL = 30.0
WORKERS = "workers"
QUEUE = "task queue"


@dataclasses.dataclass(frozen=True)
class Verdict:
    kind: AlertKind
    subject: str
    holds: bool
    detail: str


def queue_threshold(value: Any) -> int | None:
    """``nproxy.admin.alert_queue_depth``: a count of waiting tasks; empty turns it off."""
    if value is None or str(value).strip() == "":
        return None
    number = int(str(value).strip())
    if number < 0:
        raise ValueError(value)
    return number


def workers_verdict(
    workers: Sequence[probes.WorkerStatus], now: dt.datetime, watching_since: dt.datetime
) -> Verdict | None:
    alive = [w for w in workers if w.alive]
    if alive:
        return Verdict(
            AlertKind.WORKER_HEARTBEAT,
            WORKERS,
            False,
            f"{len(alive)} worker(s) beating again",
        )
    last = max((w.last_seen_at for w in workers), default=None)
    # Never heard of one: silent since the watch began (a fresh beat gives workers time).
    silent_since = max(last, watching_since) if last is not None else watching_since
    if now - silent_since < STALE_AFTER:
        return None
    heard = f"last heartbeat {last:%Y-%m-%d %H:%M:%S} UTC" if last else "no worker ever beat"
    return Verdict(
        AlertKind.WORKER_HEARTBEAT,
        WORKERS,
        True,
        f"no worker heartbeat for {int(STALE_AFTER.total_seconds() // 60)} minutes ({heard}): "
        "no image, mail or alert is processed",
    )


def queue_verdict(depth: probes.QueueDepth, threshold: int | None) -> Verdict | None:
    if threshold is None or depth.total is None:
        return None  # off, or the broker did not answer (the health page says so)
    waiting = ", ".join(f"{name}: {count}" for name, count in depth.queues.items())
    if depth.total > threshold:
        return Verdict(
            AlertKind.QUEUE_DEPTH,
            QUEUE,
            True,
            f"{depth.total} tasks waiting (above {threshold}; {waiting})",
        )
    return Verdict(AlertKind.QUEUE_DEPTH, QUEUE, False, f"{depth.total} tasks waiting")


def check(registry: Registry, watching_since: dt.datetime, now: dt.datetime | None = None) -> None:
    """One round: judge both conditions, tell the notifier, send what is due."""
    now = now or utcnow()
    session_factory = find_service(registry, IDatabase).session_factory
    with session_factory() as db:
        workers = probes.worker_statuses(db, now)
    threshold = setting(
        registry.settings, "nproxy.admin.alert_queue_depth", default=None, cast=queue_threshold
    )
    verdicts = [
        workers_verdict(workers, now, watching_since),
        queue_verdict(probes.queue_depth(registry), threshold),
    ]
    notifier = find_service(registry, IAlertNotifier)
    for verdict in verdicts:
        if verdict is None:
            continue
        if verdict.holds:
            notifier.raise_alert(verdict.kind, verdict.subject, verdict.detail)
        else:
            notifier.resolve(verdict.kind, verdict.subject, verdict.detail)
    deliver_due(session_factory, find_service(registry, IBotAPI))


def watch_forever(registry: Registry, stop: threading.Event) -> None:
    since = utcnow()
    while not stop.wait(WATCH_INTERVAL):
        try:
            check(registry, since)
        except Exception:
            log.exception("the health watch failed a round; trying again")


def start(registry: Registry) -> threading.Event:
    """The watch in a daemon thread of this (beat's) process; set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=watch_forever, args=(registry, stop), name="nproxy-health-watch", daemon=True
    )
    thread.start()
    return stop
