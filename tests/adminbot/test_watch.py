"""Beat's own watch (DESIGN 4.8): no worker heartbeat for 2 minutes, a queue deeper than
``nproxy.admin.alert_queue_depth``. Judged in the beat process and sent from there, so the
alert reaches the admins even when no worker is left to send it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fakes.telegram import FakeTelegram
from nproxy_core.alerts import AlertKind
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.health.models import WorkerHeartbeat
from nproxy_core.health.probes import QueueDepth, WorkerStatus
from nproxy_core.telegram import watch
from nproxy_core.telegram.models import TelegramAdmin

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def worker(last_seen: dt.datetime, *, alive: bool, stopped: bool = False) -> WorkerStatus:
    return WorkerStatus(
        hostname="w1",
        pid=1,
        started_at=last_seen - dt.timedelta(hours=1),
        last_seen_at=last_seen,
        stopped_at=last_seen if stopped else None,
        concurrency=4,
        active=0,
        processed=0,
        alive=alive,
    )


def test_no_worker_heard_for_two_minutes_holds():
    verdict = watch.workers_verdict(
        [worker(NOW - dt.timedelta(minutes=3), alive=False)], NOW, NOW - dt.timedelta(hours=1)
    )
    assert verdict is not None and verdict.holds
    assert verdict.kind is AlertKind.WORKER_HEARTBEAT and "2 minutes" in verdict.detail


def test_one_worker_alive_clears_it():
    verdict = watch.workers_verdict(
        [worker(NOW - dt.timedelta(minutes=9), alive=False), worker(NOW, alive=True)],
        NOW,
        NOW - dt.timedelta(hours=1),
    )
    assert verdict is not None and not verdict.holds


def test_a_worker_that_stopped_cleanly_a_minute_ago_is_not_yet_two_minutes_silent():
    stopped = [worker(NOW - dt.timedelta(minutes=1), alive=False, stopped=True)]
    assert watch.workers_verdict(stopped, NOW, NOW - dt.timedelta(hours=1)) is None
    later = NOW + dt.timedelta(minutes=2)
    verdict = watch.workers_verdict(stopped, later, NOW - dt.timedelta(hours=1))
    assert verdict is not None and verdict.holds


def test_with_no_worker_ever_a_fresh_beat_waits_two_minutes_before_calling_them_silent():
    assert watch.workers_verdict([], NOW, NOW - dt.timedelta(seconds=90)) is None
    verdict = watch.workers_verdict([], NOW, NOW - dt.timedelta(minutes=2))
    assert verdict is not None and verdict.holds and "no worker ever beat" in verdict.detail


@pytest.mark.parametrize(
    ("depth", "threshold", "holds"),
    [
        (QueueDepth({"celery": 1001}), 1000, True),
        (QueueDepth({"celery": 600, "mail": 401}), 1000, True),
        (QueueDepth({"celery": 1000}), 1000, False),
        (QueueDepth({"celery": 0}), 0, False),
        (QueueDepth({"celery": 5000}), None, None),  # turned off
        (QueueDepth({}, error="ConnectionRefusedError"), 10, None),  # cannot tell
    ],
)
def test_queue_depth_above_the_threshold_holds(depth, threshold, holds):
    verdict = watch.queue_verdict(depth, threshold)
    assert (None if verdict is None else verdict.holds) is holds


@pytest.mark.parametrize(("value", "expected"), [("", None), (" 25 ", 25), ("0", 0)])
def test_the_threshold_setting(value, expected):
    assert watch.queue_threshold(value) == expected


@pytest.mark.parametrize("value", ["-1", "many"])
def test_a_malformed_threshold_stops_start_up(make_app, value):
    with pytest.raises(Exception, match="alert_queue_depth"):
        make_app(nproxy__admin__alert_queue_depth=value)


@pytest.fixture
def registry(make_app: Callable[..., Any], bot_settings: dict[str, Any], db: Session) -> Any:
    db.add(TelegramAdmin(telegram_id=31, chat_id=31, paired_by="tests"))
    db.commit()
    settings = {**bot_settings, "nproxy.admin.alert_queue_depth": ""}
    return make_app(**{k.replace(".", "__"): v for k, v in settings.items()}).app.registry


def test_beat_alerts_and_sends_itself_when_no_worker_beats_then_says_resolved(
    registry, telegram: FakeTelegram, db
):
    # No worker process at all in this test: whatever reaches Telegram, beat sent.
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    db.add(
        WorkerHeartbeat(
            hostname="gone", pid=7, started_at=long_ago, last_seen_at=long_ago, concurrency=4
        )
    )
    db.commit()
    watch.check(registry, watching_since=long_ago)
    watch.check(registry, watching_since=long_ago)  # still silent: counted, not re-sent
    message = telegram.wait_for_message(31, contains="No worker heartbeat")
    assert "2 minutes" in message.text
    alert = db.scalars(sa.select(Alert)).one()
    assert (alert.kind, alert.state, alert.count) == ("worker_heartbeat", AlertState.OPEN, 2)
    assert len(telegram.sent_to(31)) == 1

    db.execute(
        sa.update(WorkerHeartbeat).values(last_seen_at=dt.datetime.now(dt.UTC), stopped_at=None)
    )
    db.commit()
    watch.check(registry, watching_since=long_ago)
    telegram.wait_for_message(31, after=1, contains="Resolved: No worker heartbeat")
    db.expire_all()
    assert db.get(Alert, alert.id).state == AlertState.RESOLVED
