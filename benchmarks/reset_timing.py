"""Password-reset timing for an existing and an unknown email (DESIGN 9: timing never tells
whether an account exists).

Real processes on this machine: its own PostgreSQL database and RabbitMQ vhost, ``pserve``
(waitress) for the web app, ``nproxy worker`` for the queue, and an SMTP server (aiosmtpd) that
receives the mail. It sends ``POST /api/v1/auth/password-reset`` 30 times for an address with
an account and 30 times for one without, interleaved, over one keep-alive connection, times
each answer at the client, and prints the medians. It then waits until every reset mail for the
existing account has reached the SMTP server, to show the mail really went out.

    .venv/bin/python benchmarks/reset_timing.py [--tries 30]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from nproxy_core.accounts.services import create_user  # noqa: E402
from nproxy_core.db import create_engine  # noqa: E402
from nproxy_core.migrations import upgrade  # noqa: E402
from smtp_sink import SMTPSink  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672"
BIN = Path(sys.executable).parent
EXISTING = "someone@example.com"
UNKNOWN = "nobody-here@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def write_ini(path: Path, settings: dict[str, Any], port: int) -> None:
    lines = ["[app:main]", "use = egg:nproxy"]
    lines += [f"{key} = {str(value).replace('%', '%%')}" for key, value in settings.items()]
    lines += ["", "[server:main]", "use = egg:waitress#main", f"listen = 127.0.0.1:{port}"]
    lines += ["threads = 4", "", "[loggers]", "keys = root", "", "[handlers]", "keys = console"]
    lines += ["", "[formatters]", "keys = generic", "", "[logger_root]", "level = WARN"]
    lines += ["handlers = console", "", "[handler_console]", "class = StreamHandler"]
    lines += ["args = (sys.stderr,)", "level = NOTSET", "formatter = generic", ""]
    lines += ["[formatter_generic]", "format = %%(asctime)s %%(levelname)s %%(message)s", ""]
    path.write_text("\n".join(lines))


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web process exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the web process did not start")


def time_resets(client: httpx.Client, csrf: str, tries: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {EXISTING: [], UNKNOWN: []}
    for n in range(tries):
        order = (EXISTING, UNKNOWN) if n % 2 == 0 else (UNKNOWN, EXISTING)
        for email in order:
            started = time.perf_counter()
            answer = client.post(
                "/api/v1/auth/password-reset",
                json={"email": email},
                headers={"X-CSRF-Token": csrf},
            )
            timings[email].append((time.perf_counter() - started) * 1000)
            if answer.status_code != 202:
                raise RuntimeError(f"reset answered {answer.status_code}: {answer.text}")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=30)
    args = parser.parse_args()

    name = f"nproxy_bench_reset_{os.getpid()}"
    port = free_port()
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        sink = stack.enter_context(SMTPSink())
        settings: dict[str, Any] = {
            "nproxy.env": "development",
            "sqlalchemy.url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
            "nproxy.secret": "benchmark-secret-" + "x" * 40,
            "nproxy.public_url": f"http://127.0.0.1:{port}",
            "nproxy.storage": "local",
            "storage.local.path": f"{folder}/media",
            "celery.broker_url": f"{AMQP}/{name}",
            "nproxy.ratelimit.password_reset": "100000/minute",
            "nproxy.ratelimit.password_reset_account": "100000/minute",
            **sink.settings(),
        }
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        stack.callback(drop_database, name)
        rabbitmqctl("add_vhost", name)
        stack.callback(rabbitmqctl, "delete_vhost", name)
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        upgrade(settings)
        engine = create_engine(settings)
        with Session(engine) as db:
            create_user(db, EXISTING, "a long enough password")
            db.commit()
        engine.dispose()

        ini = Path(folder, "bench.ini")
        write_ini(ini, settings, port)
        log = stack.enter_context(Path(folder, "processes.log").open("wb"))
        web = subprocess.Popen([str(BIN / "pserve"), str(ini)], stdout=log, stderr=log)
        stack.callback(stop, web)
        worker = subprocess.Popen(
            [str(BIN / "nproxy"), "-c", str(ini), "worker", "--concurrency", "2"],
            stdout=log,
            stderr=log,
        )
        stack.callback(stop, worker)
        wait_for_port(port, web)

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            csrf = client.get("/api/v1/session").json()["csrf_token"]
            time_resets(client, csrf, 5)  # warm-up: connections, caches, the first imports
            timings = time_resets(client, csrf, args.tries)

        sent = 5 + args.tries
        started = time.monotonic()
        sink.wait_for(sent, timeout=120)
        delivered = time.monotonic() - started
        existing = statistics.median(timings[EXISTING])
        unknown = statistics.median(timings[UNKNOWN])
        print(f"password reset, {args.tries} tries each, client-side latency (ms):")
        for label, email in (("existing email", EXISTING), ("unknown email ", UNKNOWN)):
            values = timings[email]
            print(
                f"  {label}: median {statistics.median(values):6.2f}  "
                f"mean {statistics.fmean(values):6.2f}  min {min(values):6.2f}  "
                f"max {max(values):6.2f}"
            )
        print(f"  difference of the medians: {abs(existing - unknown) / unknown * 100:.1f} %")
        print(
            f"  SMTP server received {len(sink.messages)} mails, all for {EXISTING} "
            f"(the last {delivered:.1f} s after the requests ended)"
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
