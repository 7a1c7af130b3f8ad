"""Generation pipeline benchmark: real PostgreSQL, real RabbitMQ, a real worker process.

Creates its own database (``nproxy_bench_<pid>``) and RabbitMQ vhost, starts ``nproxy worker``
(thread pool, 64 threads) on them with the demo provider at a fixed delay, and measures:

1. end-to-end overhead of single-image jobs: from the submission (the generation row's
   ``created_at``, stamped in the submit request) to the terminal state (``finished_at``,
   stamped in the finishing transaction), minus the provider's own time (the key attempt's
   latency as the router measured it around the provider call). Timestamps come from the
   database, so no client polling interval is in the figures. Jobs are submitted at a steady
   rate through the WSGI app;
2. requests per second of ``GET /api/v1/generations/{id}``, calling the WSGI app directly
   (no HTTP server, no network) from 1 and from 4 threads;
3. how many provider calls one worker process keeps in flight: 100 single-image jobs at a
   2 s provider delay submitted at once; the maximum overlap of the provider calls' intervals
   (from the key attempt log);
4. capacity (``--capacity``): 256 and then 512 single-image jobs queued while no worker runs,
   then one worker process started, running the Gemini plugin against the fake Gemini server
   of the tests, which takes 3 s per image: the time from the worker being ready to the last
   finish, the most calls the fake server had in flight at once, the worker's resident memory;
5. failover (``--failover``): 32 jobs of 3 s taken by one worker process while another one
   and beat run, then that worker killed with SIGKILL: seconds from its death to the finish of
   each of its jobs (median, max), with the shipped liveness settings (beats every 3 s, taken
   for dead after 15 s, a sweep every 5 s).

Drops the database and the vhost at the end.

    .venv/bin/python benchmarks/pipeline.py [--jobs 200] [--rate 10] [--delay 0.5]
    .venv/bin/python benchmarks/pipeline.py --capacity [--concurrency N]
    .venv/bin/python benchmarks/pipeline.py --failover
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
import webtest
from webob import Request

from nproxy_core.audit import Surface
from nproxy_core.billing.interfaces import IPlans
from nproxy_core.billing.models import BillingCycle
from nproxy_core.config import configure
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.generation.models import TERMINAL, Generation
from nproxy_core.health.models import WorkerProcess
from nproxy_core.keypool import services
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.keypool.models import KeyAttempt, ProviderKey
from nproxy_core.migrations import upgrade
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.wiring import find_service

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672"
NPROXY = str(Path(sys.executable).parent / "nproxy")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes.gemini import FakeGemini  # noqa: E402

PASSWORD = "benchmark password"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


class Bench:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"nproxy_bench_{os.getpid()}"
        self.settings: dict[str, Any] = {
            "nproxy.env": "development",
            "sqlalchemy.url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}",
            "nproxy.secret": "benchmark-secret-" + "x" * 40,
            "nproxy.public_url": "http://localhost",
            "nproxy.storage": "local",
            "storage.local.path": str(folder / "media"),
            "nproxy.providers": "demo",
            "nproxy.payments": "",
            "nproxy.mailer": "console",
            "celery.broker_url": f"{AMQP}/{self.name}",
            "celery.beat_schedule_file": str(folder / "beat-schedule"),
            "sqlalchemy.pool_size": "20",
            "sqlalchemy.max_overflow": "60",
        }
        self.worker: subprocess.Popen[bytes] | None = None

    # --- set-up and tear-down -------------------------------------------------------------------

    def create(self) -> None:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        upgrade(self.settings)
        self.config = configure(self.settings)
        self.wsgi = self.config.make_wsgi_app()
        self.registry = self.config.registry
        self.session = find_service(self.registry, IDatabase).session_factory

    def drop(self) -> None:
        self.stop_worker()
        find_service(self.registry, IDatabase).engine.dispose()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        rabbitmqctl("delete_vhost", self.name)

    def start_worker(self, delay: float, **settings: Any) -> None:
        self.stop_worker()
        self.worker_log = self.folder / "worker.log"
        self.worker = self.spawn("worker", delay, self.worker_log, **settings)

    def spawn(
        self, command: str, delay: float, log: Path, **settings: Any
    ) -> subprocess.Popen[bytes]:
        """``nproxy worker`` or ``nproxy beat`` on this database, once it says it is ready."""
        ini = log.with_suffix(".ini")
        lines = ["[app:main]", "use = egg:nproxy"]
        settings = {**self.settings, "demo.delay_seconds": delay, **settings}
        lines += [f"{k} = {v}" for k, v in settings.items()]
        lines += [
            "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic",
            "[logger_root]\nlevel = INFO\nhandlers = console",
            "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\n"
            "formatter = generic",
            "[formatter_generic]\nformat = %(asctime)s %(levelname)s [%(name)s] %(message)s",
        ]
        ini.write_text("\n".join(lines) + "\n")
        process = subprocess.Popen(
            [NPROXY, "-c", str(ini), command, "--loglevel", "INFO"],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ready = " ready." if command == "worker" else "beat: Starting"
        deadline = time.monotonic() + 60
        while ready not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text(errors="replace"))
            time.sleep(0.1)
        return process

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.worker = None

    def paying_user(self, provider: str = "demo") -> str:
        """A new user with a large current cycle (and a key of ``provider`` in the pool); its
        email."""
        from nproxy_core.accounts.services import create_user

        with self.session.begin() as db:
            user = create_user(db, f"bench{time.monotonic_ns()}@example.com", PASSWORD)
            now = utcnow()
            db.add(
                BillingCycle(
                    user_id=user.id,
                    plan_id=find_service(self.registry, IPlans).default(db).id,
                    starts_at=now - dt.timedelta(days=1),
                    ends_at=now + dt.timedelta(days=29),
                    period_months=1,
                    request_limit=1_000_000,
                )
            )
            email = user.email
        with self.session.begin() as db:
            keys = sa.select(sa.func.count()).where(ProviderKey.provider == provider)
            if db.scalar(keys) == 0:
                services.add_key(
                    db,
                    find_service(self.registry, ISecretBox),
                    provider=provider,
                    secret=f"{provider}-benchmark-key",
                    enabled_providers=list(find_service(self.registry, IPlugins).providers),
                    actor=services.Actor("benchmark", Surface.CLI),
                )
        return email

    def customer(self, provider: str = "demo") -> webtest.TestApp:
        email = self.paying_user(provider)
        client = webtest.TestApp(self.wsgi, extra_environ={"HTTP_HOST": "localhost"})
        csrf = client.get("/api/v1/session").json["csrf_token"]
        client.post_json(
            "/api/v1/auth/login",
            {"email": email, "password": PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        client.csrf = client.get("/api/v1/session").json["csrf_token"]  # type: ignore[attr-defined]
        client.conversation = client.post_json(  # type: ignore[attr-defined]
            "/api/v1/conversations", {}, headers={"X-CSRF-Token": client.csrf}
        ).json["id"]
        return client

    def submit(self, client: webtest.TestApp, provider: str = "demo") -> str:
        answer = client.post_json(
            f"/api/v1/conversations/{client.conversation}/generations",
            {
                "mode": "text_to_image",
                "prompt": "benchmark",
                "resolution": "square",
                "provider": provider,
            },
            headers={"X-CSRF-Token": client.csrf},
        )
        return answer.json["id"]

    def wait_all(self, ids: list[str], timeout: float = 300) -> list[Generation]:
        deadline = time.monotonic() + timeout
        while True:
            with self.session() as db:
                rows = list(db.scalars(sa.select(Generation).where(Generation.id.in_(ids))))
            if len(rows) == len(ids) and all(r.status in TERMINAL for r in rows):
                return rows
            if time.monotonic() > deadline:
                raise RuntimeError("jobs did not finish in time")
            time.sleep(0.2)

    def attempts(self, ids: list[str]) -> dict[str, KeyAttempt]:
        with self.session() as db:
            rows = db.scalars(sa.select(KeyAttempt).where(KeyAttempt.reference.in_(ids)))
            return {row.reference: row for row in rows}

    def phases(
        self,
        ids: list[str],
        rows: list[Generation],
        ready: dt.datetime,
        cpu: tuple[float, float],
    ) -> dict[str, float]:
        """Where a capacity run's time went, in seconds from the worker being ready: when jobs
        were claimed, when their provider call started and ended (the key attempt), and how
        long from the call's end to the job's finish; and the worker's CPU time (user, system:
        much system time is threads handing the GIL to each other)."""
        attempts = self.attempts(ids)

        def since(values: list[dt.datetime]) -> list[float]:
            return sorted((v - ready).total_seconds() for v in values)

        claimed = since([r.started_at for r in rows])
        called = since([a.picked_at for a in attempts.values()])
        answered = since([a.created_at for a in attempts.values()])
        tails = sorted(
            (r.finished_at - attempts[str(r.id)].created_at).total_seconds()
            for r in rows
            if str(r.id) in attempts
        )
        return {
            "first_claim": round(claimed[0], 2),
            "last_claim": round(claimed[-1], 2),
            "last_call_started": round(called[-1], 2),
            "first_call_answered": round(answered[0], 2),
            "last_call_answered": round(answered[-1], 2),
            "answer_to_finish_p50": round(percentile(tails, 50), 3),
            "answer_to_finish_max": round(tails[-1], 3),
            "worker_cpu_user_s": round(cpu[0], 2),
            "worker_cpu_system_s": round(cpu[1], 2),
            "worker_cpu_ms_per_job": round(sum(cpu) * 1000 / len(rows), 1),
        }

    # --- the three measurements -------------------------------------------------------------------

    def overhead(self, jobs: int, rate: float, delay: float) -> dict[str, float]:
        self.start_worker(delay)
        client = self.customer()
        for _ in range(5):  # warm-up: connections, imports, first queue declarations
            self.wait_all([self.submit(client)])
        ids: list[str] = []
        interval = 1.0 / rate
        started = time.monotonic()
        for n in range(jobs):
            # Paced, not bursty: the figure is the pipeline's own cost, not a queue's wait.
            pause = started + n * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            ids.append(self.submit(client))
        rows = self.wait_all(ids)
        attempts = self.attempts(ids)
        overheads, queue_waits = [], []
        for row in rows:
            assert row.status == "succeeded", row.status
            provider = attempts[str(row.id)].latency_ms / 1000
            total = (row.finished_at - row.created_at).total_seconds()
            overheads.append((total - provider) * 1000)
            queue_waits.append((row.started_at - row.created_at).total_seconds() * 1000)
        return {
            "jobs": jobs,
            "rate_per_s": rate,
            "provider_delay_s": delay,
            "overhead_p50_ms": percentile(overheads, 50),
            "overhead_p95_ms": percentile(overheads, 95),
            "overhead_max_ms": max(overheads),
            "submit_to_claim_p50_ms": percentile(queue_waits, 50),
            "submit_to_claim_p95_ms": percentile(queue_waits, 95),
        }

    def polling(self, seconds: float = 5.0) -> dict[str, float]:
        client = self.customer()
        gid = self.submit(client)
        self.wait_all([gid])
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        results: dict[str, float] = {}
        for threads in (1, 4):
            counts = [0] * threads
            stop = time.monotonic() + seconds

            def poll(slot: int, stop: float = stop, counts: list[int] = counts) -> None:
                while time.monotonic() < stop:
                    request = Request.blank(
                        f"/api/v1/generations/{gid}",
                        headers={"Cookie": cookie, "Host": "localhost"},
                    )
                    response = request.get_response(self.wsgi)
                    assert response.status_int == 200, response.status
                    counts[slot] += 1

            workers = [threading.Thread(target=poll, args=(i,)) for i in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            results[f"poll_rps_{threads}_thread{'s' if threads > 1 else ''}"] = (
                sum(counts) / seconds
            )
        return results

    def in_flight(self, jobs: int = 100, delay: float = 2.0) -> dict[str, float]:
        self.start_worker(delay)
        client = self.customer()
        started = time.monotonic()
        ids = [self.submit(client) for _ in range(jobs)]
        submitted = time.monotonic() - started
        rows = self.wait_all(ids)
        memory = worker_memory_mb(self.worker.pid) if self.worker is not None else {}
        elapsed = max(r.finished_at for r in rows) - min(r.created_at for r in rows)
        events: list[tuple[dt.datetime, int]] = []
        for attempt in self.attempts(ids).values():
            begin = attempt.created_at - dt.timedelta(milliseconds=attempt.latency_ms)
            events += [(begin, 1), (attempt.created_at, -1)]
        running = peak = 0
        for _, change in sorted(events, key=lambda e: (e[0], e[1])):
            running += change
            peak = max(peak, running)
        return {
            "jobs": jobs,
            "provider_delay_s": delay,
            "submit_seconds": round(submitted, 2),
            "max_provider_calls_in_flight": peak,
            "all_done_seconds": round(elapsed.total_seconds(), 2),
            **memory,
        }

    def capacity(
        self, concurrency: int | None, delay: float = 3.0, sizes: tuple[int, ...] = (256, 512)
    ) -> list[dict[str, Any]]:
        """256 then 512 jobs at once to one worker calling the fake Gemini server."""
        results = []
        with FakeGemini(default="slow") as gemini:
            settings = {
                "nproxy.providers": "demo, nanobanana",
                "nanobanana.api_base": gemini.base_url,
                "nanobanana.timeout_seconds": "60",
                # The database's connections are shared with everything else on the machine:
                # the worker's threads wait for one of a bounded pool instead of each holding one.
                "sqlalchemy.pool_size": "10",
                "sqlalchemy.max_overflow": "10",
            }
            self.settings.update(settings)
            self.config = configure(self.settings)
            self.wsgi = self.config.make_wsgi_app()
            self.registry = self.config.registry
            gemini.behave("nanobanana-benchmark-key", "slow", delay=delay)
            extra = {} if concurrency is None else {"nproxy.worker.concurrency": concurrency}
            self.start_worker(0.0, **extra)
            client = self.customer("nanobanana")
            self.wait_all([self.submit(client, "nanobanana")])  # warm-up
            for jobs in sizes:
                # Queued while no worker runs, so the figure is the worker's, not how fast this
                # script can submit: the clock starts when the worker says it is ready.
                self.stop_worker()
                ids = [self.submit(client, "nanobanana") for _ in range(jobs)]
                gemini.clear()
                self.start_worker(0.0, **extra)
                ready = utcnow()
                cpu = worker_cpu_seconds(self.worker.pid)
                rows = self.wait_all(ids, timeout=120)
                memory = worker_memory_mb(self.worker.pid) if self.worker is not None else {}
                user, system = worker_cpu_seconds(self.worker.pid)
                cpu = (user - cpu[0], system - cpu[1])
                elapsed = max(r.finished_at for r in rows) - ready
                results.append(
                    result := {
                        "jobs": jobs,
                        "provider_delay_s": delay,
                        "succeeded": sum(r.status == "succeeded" for r in rows),
                        "all_done_seconds": round(elapsed.total_seconds(), 2),
                        "max_calls_in_flight_at_provider": gemini.max_in_flight,
                        **memory,
                    }
                )
                print("capacity      ", result, flush=True)
                print("  where it went", self.phases(ids, rows, ready, cpu), flush=True)
                errors = [
                    line
                    for line in self.worker_log.read_text(errors="replace").splitlines()
                    if " ERROR " in line or " WARNING " in line
                ]
                for line in errors[:5]:
                    print("  worker said:", line[:300], flush=True)
            self.stop_worker()
        return results

    def failover(self, jobs: int = 32, delay: float = 3.0) -> dict[str, Any]:
        """kill -9 of a worker in the middle of its jobs, with another worker and beat running
        (the shipped liveness settings): seconds from its death to each of its jobs' finish."""
        others = [
            self.spawn("worker", delay, self.folder / "survivor.log"),
            self.spawn("beat", delay, self.folder / "beat.log"),
        ]
        doomed = self.spawn("worker", delay, self.folder / "doomed.log")
        try:
            client = self.customer()
            ids = [self.submit(client) for _ in range(jobs)]
            deadline = time.monotonic() + 60
            while True:
                with self.session() as db:
                    rows = db.execute(
                        sa.select(Generation.status, WorkerProcess.pid)
                        .join(WorkerProcess, WorkerProcess.id == Generation.worker_id, isouter=True)
                        .where(Generation.id.in_(ids))
                    ).all()
                if all(row.status == "running" for row in rows):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not take every job")
                time.sleep(0.05)
            orphans = sum(row.pid == doomed.pid for row in rows)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
            died = utcnow()
            done = self.wait_all(ids, timeout=300)
        finally:
            for process in (doomed, *others):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(30)
        after = [(r.finished_at - died).total_seconds() for r in done if r.attempts > 1]
        return {
            "jobs": jobs,
            "provider_delay_s": delay,
            "of_the_dead_worker": orphans,
            "run_again": len(after),
            "succeeded": sum(r.status == "succeeded" for r in done),
            "done_after_death_p50_s": round(percentile(after, 50), 1) if after else None,
            "done_after_death_max_s": round(max(after), 1) if after else None,
        }


def worker_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time the worker process used so far in user and in system mode, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def worker_memory_mb(pid: int) -> dict[str, float]:
    """The worker's resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return {
        "worker_rss_mb": fields.get("VmRSS", 0.0),
        "worker_peak_rss_mb": fields.get("VmHWM", 0.0),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs for the overhead figure")
    parser.add_argument("--rate", type=float, default=10.0, help="submissions per second")
    parser.add_argument("--delay", type=float, default=0.5, help="demo provider delay (s)")
    parser.add_argument(
        "--capacity", action="store_true", help="only the capacity run (256 and 512 jobs of 3 s)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="nproxy.worker.concurrency for --capacity"
    )
    parser.add_argument(
        "--failover",
        action="store_true",
        help="only the failover run (kill -9 of a worker with 32 jobs of 3 s in flight)",
    )
    parser.add_argument(
        "--capacity-jobs",
        type=int,
        nargs="+",
        default=[256, 512],
        help="job counts of the capacity run (default: 256 512)",
    )
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="nproxy-bench-"))
    bench = Bench(folder)
    bench.create()
    try:
        if args.capacity:
            bench.capacity(args.concurrency, sizes=tuple(args.capacity_jobs))
            return
        if args.failover:
            print("failover      ", bench.failover(), flush=True)
            return
        print("overhead      ", bench.overhead(args.jobs, args.rate, args.delay), flush=True)
        print("polling       ", bench.polling(), flush=True)
        print("in flight     ", bench.in_flight(), flush=True)
    finally:
        bench.drop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
