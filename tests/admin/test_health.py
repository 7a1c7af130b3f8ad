"""The health page and the overview's live numbers: queue depth asked of the broker (RabbitMQ's
own count, or the embedded transport's), services up or down with their latency, workers green
while they beat and red two minutes after they stop. A broken broker never breaks the page."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import celery
import pytest

from browser_support import RabbitVhost
from nproxy_core.db import utcnow
from nproxy_core.health.heartbeat import beat
from nproxy_core.health.models import WorkerHeartbeat
from nproxy_core.health.probes import queue_depth
from nproxy_core.tasks import CELERY_APP


def depth(admin: Any) -> int:
    return int(admin.get("/admin/health").html.select_one("#queue")["data-depth"])


def send(registry: Any, count: int) -> None:
    app: celery.Celery = registry[CELERY_APP]
    for _ in range(count):
        # A task no worker here knows: it only has to wait in the queue.
        app.send_task("nproxy.tests.waiting", args=())


def test_queue_depth_counts_what_waits_in_the_embedded_transport(admin, app):
    before = depth(admin)
    send(app.app.registry, 3)
    assert depth(admin) == before + 3
    overview = admin.get("/admin").html.select_one("#queue")
    assert int(overview["data-depth"]) == before + 3


def test_queue_depth_is_rabbitmqs_own_count(make_app, admin_user, db):
    from admin_support import AdminBrowser

    with RabbitVhost(f"nproxy_admin_{os.getpid()}") as broker_url:
        app = make_app(celery__broker_url=broker_url)
        admin = AdminBrowser(app).login(admin_user.email)
        registry = app.app.registry
        start = queue_depth(registry)
        assert start.error is None
        send(registry, 4)
        assert queue_depth(registry).queues["celery"] == start.queues.get("celery", 0) + 4
        assert depth(admin) == start.total + 4
        checks = admin.get("/admin/health").html.select_one("#service-broker")
        assert checks["data-ok"] == "true" and "amqp" in checks.get_text()
        app.app.registry[CELERY_APP].connection_for_write().default_channel.queue_purge("celery")


def test_a_broker_that_does_not_answer_shows_down_and_the_pages_still_load(
    make_app, admin_user, db
):
    from admin_support import AdminBrowser

    app = make_app(celery__broker_url="amqp://guest:guest@127.0.0.1:1//")
    admin = AdminBrowser(app).login(admin_user.email)
    started = time.monotonic()
    health = admin.get("/admin/health")
    assert health.status_int == 200
    assert time.monotonic() - started < 20
    assert health.html.select_one("#service-broker")["data-ok"] == "false"
    assert health.html.select_one("#service-database")["data-ok"] == "true"
    assert health.html.select_one("#service-storage")["data-ok"] == "true"
    assert health.html.select_one("#queue")["data-depth"] == ""
    overview = admin.get("/admin")
    assert overview.status_int == 200 and "broker down" in overview.html.select_one("#queue").text


def test_a_worker_is_green_while_it_beats_and_red_two_minutes_after_it_stops(admin, app, db):
    from nproxy_core.db import IDatabase
    from nproxy_core.wiring import find_service

    factory = find_service(app.app.registry, IDatabase).session_factory
    now = utcnow()
    beat(factory, "celery@fresh", started_at=now, concurrency=8, active=2, processed=40, now=now)
    beat(
        factory,
        "celery@quiet",
        started_at=now,
        concurrency=8,
        active=0,
        processed=1,
        now=now - dt.timedelta(minutes=2, seconds=5),
    )
    page = admin.get("/admin/health")
    states = {tr["data-worker"]: tr["data-state"] for tr in page.html.select("tr[data-worker]")}
    assert states == {"celery@fresh": "alive", "celery@quiet": "silent"}
    assert page.html.select_one("tr[data-worker='celery@quiet'] .light.bad") is not None
    assert admin.get("/admin").html.select_one("#workers")["data-alive"] == "1"

    beat(
        factory,
        "celery@fresh",
        started_at=now,
        concurrency=8,
        active=0,
        processed=40,
        now=now - dt.timedelta(minutes=3),
    )
    overview = admin.get("/admin").html.select_one("#workers")
    assert overview["data-alive"] == "0" and "none alive" in overview.get_text()


def test_heartbeats_of_workers_gone_for_a_week_are_forgotten(app, db):
    import sqlalchemy as sa

    from nproxy_core.db import IDatabase
    from nproxy_core.wiring import find_service

    factory = find_service(app.app.registry, IDatabase).session_factory
    now = utcnow()
    beat(
        factory,
        "celery@old",
        started_at=now,
        concurrency=1,
        active=0,
        processed=0,
        now=now - dt.timedelta(days=8),
    )
    beat(factory, "celery@new", started_at=now, concurrency=1, active=0, processed=0, now=now)
    db.expire_all()
    assert db.scalars(sa.select(WorkerHeartbeat.hostname)).all() == ["celery@new"]


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        ({"success": 3, "retryable": 1}, {"success": "3", "retryable": "1", "transport": "0"}),
    ],
)
def test_the_health_page_counts_attempts_by_outcome(admin, app, db, attempts, expected):
    from nproxy_core.audit import Actor, Surface
    from nproxy_core.keypool import services as pool
    from nproxy_core.keypool.interfaces import ISecretBox
    from nproxy_core.keypool.models import KeyAttempt
    from nproxy_core.wiring import find_service

    key = pool.add_key(
        db,
        find_service(app.app.registry, ISecretBox),
        provider="demo",
        secret="demo-health-1",
        enabled_providers=["demo"],
        actor=Actor("t", Surface.CLI),
    )
    now = utcnow()
    for outcome, count in attempts.items():
        for i in range(count):
            db.add(
                KeyAttempt(
                    key_id=key.id,
                    provider="demo",
                    path="direct",
                    outcome=outcome,
                    latency_ms=10,
                    picked_at=now,
                    claim_version=i,
                    created_at=now,
                )
            )
    db.commit()
    rows = admin.get("/admin/health").html.select("#attempt-outcomes tr[data-outcome]")
    got = {
        tr["data-outcome"]: tr.select_one("td[data-label='Last hour']").get_text() for tr in rows
    }
    for outcome, count in expected.items():
        assert got[outcome] == count
