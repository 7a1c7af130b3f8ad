"""``GET /metrics`` (DESIGN 4.11): bearer-protected, bounded labels, and correct across several
gunicorn processes and a worker (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from generation_support import WebServer, cookie_header, wait_for_generation
from nproxy_core.generation.tasks import run_generation
from nproxy_core.tasks import run_now

TOKEN = "metrics-token-for-tests"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:{{(.*)}})? (\S+)$", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            total += float(match.group(2))
    return total


def scrape(app) -> str:
    return app.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text


def test_metrics_answer_404_without_a_token_setting_and_401_without_the_token(make_app):
    assert make_app().get("/metrics", status=404).json["error"]["code"] == "not_found"
    app = make_app(nproxy__metrics_token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = app.get("/metrics", headers=headers, status=401)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert app.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_int == 200


def test_requests_generations_and_states_are_counted_with_route_patterns(
    make_app, customer_factory, add_key
):
    app = make_app(nproxy__metrics_token=TOKEN, demo__delay_seconds="0")
    registry = app.app.registry
    add_key(registry, "demo-key-metrics")
    before = scrape(app)
    alice = customer_factory(app)
    generation_id = alice.submit(alice.conversation()).json["id"]
    run_now(registry, run_generation, generation_id)
    alice.poll(generation_id)
    alice.api.get("/api/v1/generations/00000000-0000-0000-0000-000000000000")
    after = scrape(app)

    poll = {"route": "/api/v1/generations/{generation_id}", "method": "GET"}
    for status in ("200", "404"):
        counted = sample(after, "nproxy_http_requests_total", **poll, status=status)
        assert counted - sample(before, "nproxy_http_requests_total", **poll, status=status) == 1
    assert "00000000-0000" not in after  # raw paths never become labels
    assert (
        sample(after, "nproxy_generations_total", status="succeeded")
        - sample(before, "nproxy_generations_total", status="succeeded")
        == 1
    )
    assert sample(after, "nproxy_images_total", outcome="succeeded") > sample(
        before, "nproxy_images_total", outcome="succeeded"
    )
    assert sample(after, "nproxy_key_attempts_total", provider="demo", outcome="success") >= 1
    assert sample(after, "nproxy_keys", provider="demo", state="active") == 1
    assert sample(after, "nproxy_keys", provider="demo", state="manual_review") == 0
    assert sample(after, "nproxy_payments_awaiting_review") == 0
    assert "nproxy_http_request_duration_seconds_bucket" in after
    assert alice.user.email not in after


@pytest.mark.slow
def test_two_gunicorn_processes_and_a_worker_add_up(
    make_app, worker_settings, start_process, customer_factory, add_key, tmp_path, db
):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    try:
        settings = {**worker_settings, "nproxy.metrics_token": TOKEN}
        app = make_app(**settings)
        add_key(app.app.registry, "demo-key-multi")
        start_process("worker", settings, "--concurrency", "4")
        server = WebServer(tmp_path, settings, WEB_WORKERS="2", WEB_THREADS="8")
        try:
            alice = customer_factory(app)
            cookie = cookie_header(alice.api)
            conversation = alice.conversation()
            ids = [alice.submit(conversation).json["id"] for _ in range(3)]
            for generation_id in ids:
                wait_for_generation(db, generation_id)

            def ask_healthz(_: int) -> int:
                return server.request("GET", "/healthz", cookie)[0]

            # Connections at once, a round at a time, until both gunicorn workers have answered
            # some (which one accepts a connection is the kernel's choice: 40 in a row once all
            # went to one of them on a loaded machine).
            sent = 0
            others = {server.popen.pid, os.getpid()}  # the master; this process's own app
            with ThreadPoolExecutor(max_workers=8) as pool:
                while True:
                    assert set(pool.map(ask_healthz, range(40))) == {200}
                    sent += 40
                    processes = _pids(folder) - others
                    if len(processes) >= 3 or sent >= 400:
                        break
            assert len(processes) >= 3, processes  # two gunicorn workers and the Celery worker

            bearer = {"Authorization": f"Bearer {TOKEN}"}
            status, text, _ = server.request("GET", "/metrics", "", headers=bearer)
            assert status == 200
            healthz = {"route": "/healthz", "method": "GET", "status": "200"}
            assert sample(text, "nproxy_http_requests_total", **healthz) == sent
            # Recorded by the worker process only, read by the web process.
            assert sample(text, "nproxy_generations_total", status="succeeded") == 3
            assert sample(text, "nproxy_worker_heartbeat_timestamp_seconds") > time.time() - 60
        finally:
            server.stop()
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _pids(folder: Path) -> set[int]:
    return {int(m.group(1)) for f in folder.iterdir() if (m := re.search(r"_(\d+)\.db$", f.name))}
