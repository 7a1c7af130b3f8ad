"""Held polls served as in production (gunicorn, gthread) against a real worker on RabbitMQ:
many of them at once neither starve the other requests nor miss their job's end."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from generation_support import WebServer, cookie_header
from nproxy_core.generation.models import Generation

pytestmark = pytest.mark.slow

HELD = 200


@pytest.fixture
def web_server(tmp_path: Path, worker_settings: dict[str, Any], db: Any) -> Iterator[WebServer]:
    server = WebServer(tmp_path, worker_settings, WEB_WORKERS="1", WEB_THREADS="300")
    try:
        yield server
    finally:
        server.stop()


def latencies(server: WebServer, cookie: str, count: int = 30) -> list[float]:
    """Seconds of ``count`` unrelated chat requests (the conversation list), one after another."""
    seconds = []
    for _ in range(count):
        status, _body, elapsed = server.request("GET", "/api/v1/conversations", cookie)
        assert status == 200
        seconds.append(elapsed)
    return seconds


def test_two_hundred_held_polls_against_a_real_worker_leave_other_requests_fast(
    make_app, worker_settings, start_process, customer_factory, add_key, web_server, db
):
    app = make_app(**worker_settings)
    add_key(app.app.registry, "demo-key-held")
    alice = customer_factory(app, request_limit=10_000)
    cookie = cookie_header(alice.api)
    conversation = alice.conversation()
    ids = []
    for _ in range(HELD):
        answer = alice.submit(conversation)
        assert answer.status_int == 202, answer.text
        ids.append(answer.json["id"])

    latencies(web_server, cookie, 10)  # warm-up: connections, first templates
    before = latencies(web_server, cookie)

    answers: dict[str, tuple[int, Any, float]] = {}
    answered_at: dict[str, float] = {}
    sent_at: dict[str, float] = {}
    sent = threading.Barrier(HELD + 1, timeout=60)

    def hold(generation_id: str) -> None:
        sent.wait()
        sent_at[generation_id] = time.time()
        answers[generation_id] = web_server.request(
            "GET", f"/api/v1/generations/{generation_id}?wait=25", cookie
        )
        answered_at[generation_id] = time.time()

    threads = [threading.Thread(target=hold, args=(gid,), daemon=True) for gid in ids]
    for thread in threads:
        thread.start()
    sent.wait()
    # The jobs are queued and no worker runs yet: every poll is being held now.
    threading.Event().wait(1.0)
    assert not answers, "polls answered before their jobs ran"
    during = latencies(web_server, cookie)

    # A worker starts and makes the images; every held poll wakes with its result.
    start_process(
        "worker",
        {**worker_settings, "demo.delay_seconds": "0.5"},
        "--concurrency",
        "64",
    )
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == HELD
    statuses = {body["status"] for status, body, _ in answers.values() if status == 200}
    assert statuses == {"succeeded"}, statuses
    # Each woken by its job's end, not by the 25 s deadline: none held until its deadline, and
    # typically answered within a second or two of the moment its generation finished (the
    # slowest few wait for the web process's threads on a loaded machine).
    finished = dict(
        db.execute(
            sa.select(Generation.id, Generation.finished_at).where(
                Generation.id.in_([uuid.UUID(gid) for gid in ids])
            )
        ).all()
    )
    lags = [answered_at[gid] - finished[uuid.UUID(gid)].timestamp() for gid in ids]
    # A poll the deadline released answers 25 s or more after it was sent (the server counts
    # from when it reads the request); one its job woke answers before, however late the job.
    held_for = [answered_at[gid] - sent_at[gid] for gid in ids]
    assert max(held_for) < 25, sorted(held_for)[-5:]
    assert statistics.median(lags) < 3, sorted(lags)[len(lags) // 2 :][:5]

    # Holding 200 requests did not slow the others down (medians, a few milliseconds apart).
    assert statistics.median(during) - statistics.median(before) < 0.02, (before, during)
