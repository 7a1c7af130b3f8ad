"""The developer API under load, served as in production (gunicorn with gunicorn.conf.py, a
real worker on RabbitMQ, PostgreSQL): many ``POST /v1/generate`` requests waiting at once for a
slow provider, while a person's chat keeps polling.

The requests come from many keys (8 each, the default per-key limit of unfinished jobs).
Prints: when the waiting requests completed (from the first send), the chat poll's p50/p95
before and while they wait, and the web processes' resident memory. Aims (issue 12): all of
them done in under twice the provider's delay; the chat's p95 under load within twice its p95
without.

    .venv/bin/python benchmarks/api.py [--requests 300] [--delay 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pipeline import Bench, percentile
from poll import Server, cookie_of, ms, rss_mb

#: Requests per API key: the default limit of unfinished generations per key.
PER_KEY = 8


def chat_polls(server: Server, cookie: str, gid: str, until: threading.Event) -> list[float]:
    """Latencies of the chat's poll of a finished generation, one after another."""
    seconds = []
    while not until.is_set():
        started = time.perf_counter()
        status, _ = server.get(f"/api/v1/generations/{gid}", cookie)
        seconds.append(time.perf_counter() - started)
        assert status == 200
        time.sleep(0.02)
    return seconds


def generate(server: Server, key: str, n: int, results: list[Any], go: threading.Barrier) -> None:
    body = json.dumps({"prompt": f"benchmark {n}", "size": "1024x1024"})
    go.wait()
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        connection.request(
            "POST",
            "/v1/generate",
            body=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        raw = response.read()
        try:
            state = json.loads(raw).get("status")
        except ValueError:
            state = f"not JSON: {raw[:200]!r}"
        results.append((response.status, state, started, time.monotonic()))
    finally:
        connection.close()


def stages(bench: Bench) -> dict[str, float]:
    """Where the time went, from the generations' own timestamps: first submission to each
    row's creation (the submissions queue), creation to claim (the job queue), and the run."""
    import sqlalchemy as sa

    from nproxy_core.generation.models import Generation

    with bench.session() as db:
        rows = db.execute(
            sa.select(Generation.created_at, Generation.started_at, Generation.finished_at)
        ).all()
    # The oldest is the warm-up generation made before the load.
    rows = sorted((r for r in rows if r.finished_at is not None), key=lambda r: r.created_at)[1:]
    first = rows[0].created_at
    created = [(r.created_at - first).total_seconds() for r in rows]
    queued = [(r.started_at - r.created_at).total_seconds() for r in rows]
    run = [(r.finished_at - r.started_at).total_seconds() for r in rows]
    return {
        "created_after_first_p50_s": round(percentile(created, 50), 2),
        "created_after_first_max_s": round(max(created), 2),
        "queued_p50_s": round(percentile(queued, 50), 2),
        "queued_p95_s": round(percentile(queued, 95), 2),
        "run_p50_s": round(percentile(run, 50), 2),
        "run_p95_s": round(percentile(run, 95), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--delay", type=float, default=5.0, help="demo provider delay (s)")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="nproxy-bench-api-"))
    bench = Bench(folder)
    bench.settings["nproxy.api.rate_limit"] = "100000/minute"
    # Production's pool sizes: two gunicorn processes and a worker within PostgreSQL's default
    # of 100 connections.
    bench.settings.pop("sqlalchemy.pool_size")
    bench.settings.pop("sqlalchemy.max_overflow")
    bench.settings["nproxy.ratelimit.login"] = "100000/minute"
    bench.create()
    server = None
    try:
        # Many developers, each within the default limit of unfinished jobs per key (8): one
        # account's submissions queue on its own quota row, as they must.
        keys = []
        for _ in range(-(-args.requests // PER_KEY)):
            developer = bench.customer()
            keys.append(
                developer.post_json(
                    "/api/v1/api-keys",
                    {"name": "bench"},
                    headers={"X-CSRF-Token": developer.csrf},
                ).json["key"]
            )
        client = bench.customer()
        cookie = cookie_of(client)
        # Enough worker threads that every job's provider call runs at once.
        bench.start_worker(args.delay, **{"nproxy.worker.concurrency": args.requests + 20})
        finished = bench.submit(client)
        bench.wait_all([finished])
        server = Server(bench, "gunicorn")

        for _ in range(50):  # warm-up: both gunicorn processes loaded, connections pooled
            server.get(f"/api/v1/generations/{finished}", cookie)
        stop = threading.Event()
        idle: list[float] = []
        poller = threading.Thread(
            target=lambda: idle.extend(chat_polls(server, cookie, finished, stop))
        )
        poller.start()
        time.sleep(5)
        stop.set()
        poller.join()
        rss_idle = rss_mb(server.pids())

        results: list[Any] = []
        go = threading.Barrier(args.requests + 1)
        senders = [
            threading.Thread(
                target=generate, args=(server, keys[n // PER_KEY], n, results, go), daemon=True
            )
            for n in range(args.requests)
        ]
        for sender in senders:
            sender.start()
        stop = threading.Event()
        loaded: list[float] = []
        poller = threading.Thread(
            target=lambda: loaded.extend(chat_polls(server, cookie, finished, stop))
        )
        go.wait()
        t0 = time.monotonic()
        poller.start()
        time.sleep(args.delay / 2)
        rss_loaded = rss_mb(server.pids())
        for sender in senders:
            sender.join(180)
        stop.set()
        poller.join()

        done = sorted(end - t0 for _status, _state, _start, end in results)
        failures = [(status, state) for status, state, _s, _e in results if status != 200]
        if failures:
            print("failed    ", len(failures), failures[:3], flush=True)
        ok = sum(1 for status, state, _s, _e in results if status == 200 and state == "succeeded")
        print(
            "api       ",
            {
                "requests": args.requests,
                "provider_delay_s": args.delay,
                "answered_200_succeeded": ok,
                "completed_p50_s": round(percentile(done, 50), 2),
                "completed_p95_s": round(percentile(done, 95), 2),
                "all_completed_s": round(done[-1], 2),
            },
            flush=True,
        )
        print(
            "chat poll ",
            {
                "without_load_p50_ms": ms(percentile(idle, 50)),
                "without_load_p95_ms": ms(percentile(idle, 95)),
                "during_load_p50_ms": ms(percentile(loaded, 50)),
                "during_load_p95_ms": ms(percentile(loaded, 95)),
                "polls_during_load": len(loaded),
            },
            flush=True,
        )
        print("web rss   ", {"idle_mb": rss_idle, "while_waiting_mb": rss_loaded}, flush=True)
        print("stages    ", stages(bench), flush=True)
    finally:
        if server is not None:
            server.stop()
        bench.drop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
