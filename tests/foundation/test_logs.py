"""Logs (DESIGN 4.11): one JSON object per line in production, the request id on every answer
and in every line of the request, carried into the worker's lines for the job it sent."""

from __future__ import annotations

import json
import logging

import pytest

from generation_support import LOGGING_INI, wait_for_generation
from nproxy_core.logs import JsonFormatter, log_context


def test_a_log_line_is_one_json_object_with_the_context():
    record = logging.LogRecord("nproxy.test", logging.WARNING, __file__, 1, "made %d", (3,), None)
    with log_context(request_id="req-12345678", generation_id="g-1"):
        line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "WARNING" and entry["logger"] == "nproxy.test"
    assert entry["message"] == "made 3"
    assert entry["request_id"] == "req-12345678" and entry["generation_id"] == "g-1"
    assert "user_id" not in entry and entry["timestamp"].endswith("+00:00")
    assert "request_id" not in json.loads(JsonFormatter().format(record))  # context is gone


def test_every_answer_carries_a_request_id_and_keeps_a_sane_one(app):
    made = app.get("/healthz").headers["X-Request-Id"]
    assert len(made) == 32 and made != app.get("/healthz").headers["X-Request-Id"]
    assert (
        app.get("/healthz", headers={"X-Request-Id": "caddy-abc-123"}).headers["X-Request-Id"]
        == "caddy-abc-123"
    )
    forged = app.get("/healthz", headers={"X-Request-Id": 'x"\n{"level":"ERROR"}'})
    assert forged.headers["X-Request-Id"] != 'x"\n{"level":"ERROR"}'
    assert app.get("/nowhere", status=404).headers["X-Request-Id"]


@pytest.mark.slow
def test_the_worker_logs_the_request_id_of_the_job(
    make_app, worker_settings, start_process, customer_factory, add_key, tmp_path, db
):
    app = make_app(**worker_settings)
    add_key(app.app.registry, "demo-key-logs")
    json_logging = LOGGING_INI.replace(
        "format = %(asctime)s %(levelname)-5.5s [%(name)s] %(message)s",
        "class = nproxy_core.logs.JsonFormatter",
    )
    worker = start_process("worker", worker_settings, ready=False, logging=json_logging)
    worker.wait_for_log('"level"')
    alice = customer_factory(app)
    answer = alice.submit(alice.conversation(), headers={"X-Request-Id": "req-to-worker-42"})
    generation_id = answer.json["id"]
    assert answer.headers["X-Request-Id"] == "req-to-worker-42"
    wait_for_generation(db, generation_id)
    worker.wait_for_log(generation_id)
    lines = [json.loads(line) for line in worker.log.splitlines() if line.startswith("{")]
    about_job = [line for line in lines if line.get("generation_id") == generation_id]
    assert about_job, worker.log[-2000:]
    assert {line["request_id"] for line in about_job} == {"req-to-worker-42"}
    assert {line["user_id"] for line in about_job} == {str(alice.user.id)}
