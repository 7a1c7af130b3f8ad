"""Logs (DESIGN 4.11): one JSON object per line in production, the request id on every answer
and in every line of the request, carried into the worker's lines for the job it sent."""

from __future__ import annotations

import configparser
import io
import json
import logging
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from apiclient import PASSWORD
from fakes.telegram import FakeTelegram
from generation_support import LOGGING_INI, Process, WebServer, wait_for_generation, write_ini
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


# --- production's logging, as the processes run it ---------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def production_logging() -> str:
    """production.ini's logging sections, verbatim, to put under a test's own [app:main]."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "production.ini")
    kept = configparser.ConfigParser(interpolation=None)
    for name in parser.sections():
        if name in ("loggers", "handlers", "formatters") or name.startswith(
            ("logger_", "handler_", "formatter_")
        ):
            kept[name] = dict(parser[name])
    text = io.StringIO()
    kept.write(text)
    return "\n" + text.getvalue()


def json_lines(log: str) -> list[dict]:
    """Every line of a process's output as JSON; the first that is not one fails the test."""
    entries = []
    for number, line in enumerate(log.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}\n{log[-3000:]}") from None
        assert isinstance(entry, dict) and {"timestamp", "level", "logger", "message"} <= set(
            entry
        ), line
        entries.append(entry)
    return entries


def test_production_logging_keeps_the_apps_info_lines_and_drops_the_libraries():
    # A plain process configured from production.ini's sections, as the CLI configures itself.
    script = textwrap.dedent(
        """
        import logging, logging.config, sys, warnings
        logging.config.fileConfig(sys.argv[1], disable_existing_loggers=False)
        logging.getLogger("nproxy_core.generation.runner").info("generation done")
        logging.getLogger("nproxy.alerts").info("alert sent")
        logging.getLogger("nproxy.access").info("GET / 200")
        logging.getLogger("sqlalchemy.engine").info("SELECT 1")
        logging.getLogger("botocore").warning("library warning")
        warnings.warn("a library's warning")
        """
    )
    with tempfile.TemporaryDirectory() as folder:
        ini = Path(folder) / "logging.ini"
        ini.write_text(production_logging())
        result = subprocess.run(
            [sys.executable, "-c", script, str(ini)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    entries = json_lines(result.stderr)
    assert [(e["logger"], e["message"]) for e in entries][:4] == [
        ("nproxy_core.generation.runner", "generation done"),
        ("nproxy.alerts", "alert sent"),
        ("nproxy.access", "GET / 200"),
        ("botocore", "library warning"),
    ]
    assert entries[4]["logger"] == "py.warnings" and "a library's warning" in entries[4]["message"]
    assert len(entries) == 5


def test_every_answer_has_one_access_line_without_the_query(app, customer_factory):
    developer = customer_factory(app)
    api_key = developer.api.post("/api/v1/api-keys", {"name": "logs"}).json["key"]
    lines = []
    handler = logging.Handler()
    handler.setFormatter(JsonFormatter())
    handler.emit = lambda record: lines.append(handler.format(record))  # in the request's context
    access = logging.getLogger("nproxy.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        app.get("/healthz", headers={"X-Request-Id": "req-access-1"})
        app.get("/reset-password?token=sEcReT-reset-token", status="*")
        app.get("/media/x.png?sig=sEcReT-signature&expires=1", status="*")
        app.get("/nowhere", status=404)
        app.post("/api/v1/auth/login", status=403)  # no CSRF token
        app.get("/v1/usage", headers={"Authorization": f"Bearer {api_key}"})
    finally:
        access.removeHandler(handler)
        access.setLevel(logging.NOTSET)
    entries = [json.loads(line) for line in lines]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("GET", "/healthz", 200),
        ("GET", "/reset-password", entries[1]["status"]),
        ("GET", "/media/x.png", entries[2]["status"]),
        ("GET", "/nowhere", 404),
        ("POST", "/api/v1/auth/login", 403),
        ("GET", "/v1/usage", 200),
    ]
    assert entries[0]["route"] == "/healthz" and entries[0]["request_id"] == "req-access-1"
    assert "user_id" not in entries[0] and entries[5]["user_id"] == str(developer.user.id)
    assert entries[3]["route"] is None
    assert entries[4]["route"] == "/api/v1/auth/login"
    assert all(isinstance(e["duration_ms"], float) and e["duration_ms"] >= 0 for e in entries)
    assert all(e["request_id"] for e in entries) and all(e["level"] == "INFO" for e in entries)
    assert "sEcReT" not in json.dumps(entries)


@pytest.mark.slow
def test_gunicorn_as_in_production_writes_only_json_lines_and_one_per_request(
    tmp_path, base_settings, db, user_factory
):
    user = user_factory()
    server = WebServer(
        tmp_path, base_settings, logging=production_logging(), WEB_WORKERS="1", WEB_THREADS="4"
    )
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
            assert client.get("/healthz", headers={"X-Request-Id": "req-healthz-1"}).is_success
            client.get("/reset-password", params={"token": "sEcReT-reset-token"})
            assert client.get("/nowhere").status_code == 404
            csrf = client.get("/api/v1/session").json()["csrf_token"]
            login = client.post(
                "/api/v1/auth/login",
                json={"email": user.email, "password": PASSWORD},
                headers={"X-CSRF-Token": csrf},
            )
            assert login.status_code == 200, login.text
            me = client.get("/api/v1/me", headers={"X-Request-Id": "req-me-1"})
            assert me.status_code == 200
        # A graceful restart (kill -HUP) sets the logging up again: still JSON.
        server.popen.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while server.log_path.read_text().count("Booting worker") < 2:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.05)
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
            assert client.get("/healthz", headers={"X-Request-Id": "req-after-hup"}).is_success
    finally:
        server.stop()
    entries = json_lines(server.log_path.read_text())
    assert any(e["logger"] == "gunicorn.error" for e in entries)  # gunicorn's own, as JSON
    access = [e for e in entries if e["logger"] == "nproxy.access"]
    assert [(e["method"], e["path"], e["status"]) for e in access] == [
        ("GET", "/healthz", 200),
        ("GET", "/reset-password", access[1]["status"]),
        ("GET", "/nowhere", 404),
        ("GET", "/api/v1/session", 200),
        ("POST", "/api/v1/auth/login", 200),
        ("GET", "/api/v1/me", 200),
        ("GET", "/healthz", 200),
    ]
    assert access[-1]["request_id"] == "req-after-hup"
    assert access[0]["request_id"] == "req-healthz-1" and access[0]["route"] == "/healthz"
    assert access[5]["request_id"] == "req-me-1" and access[5]["user_id"] == str(user.id)
    assert all(e["duration_ms"] >= 0 and e["request_id"] for e in access)
    assert "sEcReT" not in server.log_path.read_text()


@pytest.mark.slow
def test_worker_and_beat_as_in_production_write_only_json_lines(
    make_app, worker_settings, start_process, customer_factory, add_key, db
):
    app = make_app(**worker_settings)
    add_key(app.app.registry, "demo-key-json-logs")
    worker = start_process("worker", worker_settings, logging=production_logging())
    beat = start_process("beat", worker_settings, logging=production_logging())
    alice = customer_factory(app)
    answer = alice.submit(alice.conversation(), headers={"X-Request-Id": "req-json-worker"})
    generation_id = answer.json["id"]
    wait_for_generation(db, generation_id)
    worker.wait_for_log(f"generation {generation_id}")
    worker.stop()
    beat.stop()
    worker_entries = json_lines(worker.log)
    beat_entries = json_lines(beat.log)
    # The app's INFO lines pass, with the job's context.
    done = [e for e in worker_entries if e["logger"] == "nproxy_core.generation.runner"]
    assert done and done[-1]["level"] == "INFO"
    assert done[-1]["generation_id"] == generation_id
    assert done[-1]["request_id"] == "req-json-worker"
    # Celery's own lines are there, as JSON: the worker's start, its tasks, beat's start.
    assert any(
        e["logger"].startswith("celery") and "ready." in e["message"] for e in worker_entries
    )
    assert any(e["logger"].startswith("celery.beat") for e in beat_entries)


@pytest.mark.slow
def test_the_admin_bot_as_in_production_writes_only_json_lines(tmp_path, base_settings, db):
    token = "777001:TEST-logs-token"
    with FakeTelegram(token=token) as telegram:
        settings = {
            **base_settings,
            "telegram.bot_token": token,
            "telegram.api_base": telegram.api_base,
        }
        ini = write_ini(tmp_path, settings, name="bot.ini", logging=production_logging())
        bot = Process(["-c", str(ini), "bot"], tmp_path / "bot.log", tmp_path)
        try:
            telegram.wait_for_polling(timeout=60)
            telegram.send_text(4242, "/start")
            telegram.wait_for_message(4242)
            bot.wait_for_log("admin bot started")
        finally:
            bot.stop()
    entries = json_lines(bot.log)
    started = [e for e in entries if e["message"] == "admin bot started"]
    assert started and started[0]["logger"].startswith("nproxy_core.")
    assert "TEST-logs-token" not in bot.log  # the token is in every Bot API URL
