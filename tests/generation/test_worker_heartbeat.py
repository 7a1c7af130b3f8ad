"""Workers record a heartbeat (DESIGN 4.7, 4.8): a real ``nproxy worker`` process writes its row
when it starts and every half minute, counts what it ran, and marks a clean stop; a worker
killed with SIGKILL simply stops beating, which the admin shows red two minutes later."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from nproxy_core.config import ConfigurationError
from nproxy_core.health.models import WorkerHeartbeat


def heartbeats(db: Any) -> list[WorkerHeartbeat]:
    db.expire_all()
    return list(db.scalars(sa.select(WorkerHeartbeat)))


def wait_for(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_worker_beats_when_it_starts_and_marks_a_clean_stop(start_worker, db):
    worker = start_worker()
    [row] = heartbeats(db)
    assert row.hostname.startswith("celery@") and row.pid == worker.popen.pid
    assert row.stopped_at is None and row.concurrency == 16
    worker.stop()
    wait_for(lambda: heartbeats(db)[0].stopped_at is not None)


def test_a_killed_worker_leaves_its_last_beat_and_a_restart_reuses_its_row(start_worker, db):
    first = start_worker()
    [row] = heartbeats(db)
    hostname, first_seen = row.hostname, row.last_seen_at
    first.kill9()
    [after] = heartbeats(db)
    assert after.stopped_at is None and after.last_seen_at == first_seen
    second = start_worker()
    [again] = heartbeats(db)
    assert again.hostname == hostname and again.pid == second.popen.pid
    assert again.last_seen_at > first_seen


def test_a_running_worker_keeps_beating(start_worker, db):
    start_worker(nproxy__worker__heartbeat_seconds="0.3")
    first = heartbeats(db)[0].last_seen_at
    wait_for(lambda: heartbeats(db)[0].last_seen_at > first, timeout=10)


@pytest.mark.parametrize("interval", ["soon", "0", "-1", "61"])
def test_a_malformed_heartbeat_interval_stops_start_up_naming_the_setting(make_app, interval):
    with pytest.raises(ConfigurationError, match=r"nproxy\.worker\.heartbeat_seconds"):
        make_app(nproxy__worker__heartbeat_seconds=interval)
