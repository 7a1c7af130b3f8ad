"""The chat page's render time, in each language (DESIGN 4.15; issue 24: within 10 % of the
time before the languages).

Builds the app on a SQLite file in a temporary folder, migrates it, makes one user, logs in
through WebTest and asks for ``/chat`` ``--runs`` times per language (after a warm-up),
printing the median and p95 in milliseconds, and the median CPU time of the requesting thread
(steadier than the wall clock on a shared machine), and the Python function calls per request
(counted by cProfile in a separate pass: the same on a busy machine as on a quiet one). The
page's JavaScript catalog is part of what is measured. To compare with a checkout of an older
commit, run the same script with that checkout's ``src`` first on ``PYTHONPATH`` (``--languages
en`` there, which ignores the header).

    .venv/bin/python benchmarks/chat_render.py [--runs 300] [--languages en,ru,uz]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import webtest

from nproxy_core.accounts.services import create_user
from nproxy_core.config import configure
from nproxy_core.db import IDatabase
from nproxy_core.migrations import upgrade
from nproxy_core.wiring import find_service

EMAIL = "chat-bench@example.com"
PASSWORD = "correct horse battery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="requests per language")
    parser.add_argument("--languages", default="en,ru,uz", help="Accept-Language values")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = {
            "sqlalchemy.url": f"sqlite:///{Path(folder) / 'bench.sqlite'}",
            "nproxy.secret": "benchmark-secret-" + "x" * 40,
            "nproxy.public_url": "http://localhost",
            "nproxy.storage": "local",
            "storage.local.path": str(Path(folder) / "media"),
            "nproxy.providers": "demo",
            "nproxy.payments": "demo",
            "nproxy.mailer": "dummy",
            "celery.broker_url": "memory://",
            "nproxy.ratelimit.login": "1000/minute",
        }
        upgrade(settings)
        config = configure(settings)
        app = webtest.TestApp(config.make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})
        session = find_service(config.registry, IDatabase).session_factory()
        create_user(session, EMAIL, PASSWORD)
        session.commit()
        session.close()
        token = app.get("/api/v1/session").json["csrf_token"]
        app.post("/login", {"email": EMAIL, "password": PASSWORD, "csrf_token": token})
        for language in args.languages.split(","):
            headers = {"Accept-Language": language}
            page = app.get("/chat", headers=headers)
            assert page.status_int == 200 and 'id="chat"' in page.text, page.status
            for _ in range(50):  # warm-up: templates compiled, localizers made
                app.get("/chat", headers=headers)
            times, cpu = [], []
            for _ in range(args.runs):
                started, started_cpu = time.perf_counter(), time.thread_time()
                app.get("/chat", headers=headers)
                cpu.append((time.thread_time() - started_cpu) * 1000)
                times.append((time.perf_counter() - started) * 1000)
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(50):
                app.get("/chat", headers=headers)
            profile.disable()
            calls = pstats.Stats(profile).total_calls / 50  # type: ignore[attr-defined]
            times.sort()
            p95 = times[int(len(times) * 0.95) - 1]
            # CPU time of this thread: what the page costs, whatever else the machine runs.
            print(
                f"/chat {language}: median {statistics.median(times):.2f} ms, "
                f"p95 {p95:.2f} ms, CPU median {statistics.median(cpu):.2f} ms, "
                f"CPU fastest {min(cpu):.2f} ms, {calls:.0f} calls "
                f"({args.runs} runs)"
            )


if __name__ == "__main__":
    main()
