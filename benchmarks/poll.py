"""The chat's poll, served as in production: real PostgreSQL, RabbitMQ, a worker and gunicorn.

Creates its own database and RabbitMQ vhost (see ``pipeline.Bench``) and prints:

1. ``cpu``: CPU time per request of the poll ``GET /api/v1/generations/{id}`` (a finished
   generation), the developer API's poll ``GET /v1/generations/{id}`` (Bearer key),
   ``/healthz`` and a bare Pyramid route (``/bench/hello``: no cookie, no database) added to
   the same app, calling it in-process; ``throughput``: requests per second and p50/p99
   latency of both polls and the bare route with ``wrk`` (10 connections), served by the same
   server in the same run, in turns; and each poll's share of the bare route;
2. ``round_trips``: database round trips of one plain poll, one ``/v1`` poll, one held poll
   woken by its job's end, and ``/healthz``, counted from the PostgreSQL wire protocol itself
   (libpq's trace: every round trip ends with a ReadyForQuery message);
3. ``wake``: from the provider returning an image (the key attempt's timestamp, written by the
   worker) to the chat's request answering, p50/p95: for a held poll (``?wait=25``) and for
   the plain once-a-second polling the chat did before;
4. ``held`` (gunicorn only): 500 polls held at once on jobs that do not finish, and the chat's
   other requests (conversation list, ``/api/v1/me``, a finished poll) p50/p95 before and
   while they are held;
5. ``browser`` (with ``--browser``): in headless Chromium, from pressing Enter to the image
   decoded on the page, minus the provider's time, p50/p95.

    .venv/bin/python benchmarks/poll.py [--server gunicorn|waitress] [--browser] [--port N]

``--server waitress`` serves with production's former settings (waitress, 4 threads), to
compare; it skips the 500 held polls, which it cannot hold (each takes one of its 4 threads).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pipeline import PASSWORD, Bench, percentile
from webob import Request

from nproxy_core.db import IDatabase
from nproxy_core.generation.models import Generation
from nproxy_core.keypool.models import KeyAttempt
from nproxy_core.wiring import find_service

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent


def bench_app(global_config: dict[str, Any], **settings: Any) -> Any:
    """The nproxy app plus ``/bench/hello``, a bare Pyramid view: the baseline of the server."""
    from pyramid.response import Response

    from nproxy_core.config import configure

    config = configure(settings)
    config.add_route("bench.hello", "/bench/hello")
    config.add_view(lambda request: Response(b"hello"), route_name="bench.hello")
    return config.make_wsgi_app()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The benchmark app behind gunicorn (the repository's gunicorn.conf.py) or waitress."""

    def __init__(self, bench: Bench, kind: str, port: int = 0, **environ: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ini = bench.folder / "web.ini"
        lines = ["[app:main]", "use = call:poll:bench_app"]
        lines += [f"{k} = {v}" for k, v in bench.settings.items()]
        lines += ["[server:main]", "use = egg:waitress#main", f"listen = 127.0.0.1:{self.port}"]
        ini.write_text("\n".join(lines) + "\n")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "WEB_BIND": f"127.0.0.1:{self.port}",
            **environ,
        }
        if kind == "gunicorn":
            command = [str(BIN / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py")]
            command += ["--paste", str(ini)]
        else:
            command = [str(BIN / "pserve"), str(ini)]
        self.log = (bench.folder / "web.log").open("wb")
        self.popen = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((bench.folder / "web.log").read_text()) from None
                time.sleep(0.1)

    def get(self, path: str, cookie: str, timeout: float = 60) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Cookie": cookie, "Accept": "application/json"}
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        return response.status, (json.loads(body) if body.startswith(b"{") else body)

    def pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-g", str(self.popen.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()


def cookie_of(client: Any) -> str:
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# --- 1. throughput ------------------------------------------------------------------------------

WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def wrk(url: str, cookie: str | None, seconds: int, bearer: str | None = None) -> dict[str, float]:
    headers = ["-H", f"Cookie: {cookie}"] if cookie else []
    headers += ["-H", f"Authorization: Bearer {bearer}"] if bearer else []
    out = subprocess.run(
        ["wrk", "-t2", "-c10", f"-d{seconds}s", "--latency", *headers, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency = {f"p{p}_ms": round(float(v) * scale[u], 2) for p, v, u in WRK_LATENCY.findall(out)}
    return {"rps": round(rps), **latency}


def throughput(
    server: Server, cookie: str, gid: str, seconds: int, key: str, rounds: int = 4
) -> dict[str, Any]:
    """Both polls and the bare route, each ``seconds`` in all, taken in turns of
    ``seconds / rounds``: on a shared machine, a burst of load then weighs on all three alike
    (one after the other, the share depended on which of them a burst fell on)."""
    urls = {
        "poll": (f"{server.url}/api/v1/generations/{gid}", cookie, None),
        "v1_poll": (f"{server.url}/v1/generations/{gid}", None, key),
        "bare": (f"{server.url}/bench/hello", None, None),
    }
    for url, jar, bearer in urls.values():
        wrk(url, jar, 2, bearer=bearer)  # warm-up
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, (url, jar, bearer) in urls.items():
            runs[name].append(wrk(url, jar, max(1, seconds // rounds), bearer=bearer))
    result: dict[str, Any] = {
        name: {
            "rps": round(statistics.fmean(r["rps"] for r in each)),
            **{
                figure: round(statistics.median(r[figure] for r in each), 2)
                for figure in ("p50_ms", "p99_ms")
            },
        }
        for name, each in runs.items()
    }
    for name in ("poll", "v1_poll"):
        result[f"{name}_share_of_bare"] = round(result[name]["rps"] / result["bare"]["rps"], 3)
    return result


def cpu(bench: Bench, cookie: str, gid: str, key: str, count: int = 2000) -> dict[str, float]:
    """CPU time of this process per request, calling the WSGI app directly (no server): on a
    busy machine a steadier figure than requests per second."""
    wsgi = bench_app({}, **bench.settings)
    result = {}
    paths = {
        "poll": f"/api/v1/generations/{gid}",
        "v1_poll": f"/v1/generations/{gid}",
        "healthz": "/healthz",
        "bare": "/bench/hello",
    }
    for name, path in paths.items():
        headers = {"Host": "localhost", **({"Cookie": cookie} if name != "bare" else {})}
        if name == "v1_poll":
            headers = {"Host": "localhost", "Authorization": f"Bearer {key}"}
        for _ in range(100):
            Request.blank(path, headers=headers).get_response(wsgi)
        started = time.process_time()
        for _ in range(count):
            response = Request.blank(path, headers=headers).get_response(wsgi)
            assert response.status_int == 200, (path, response.status)
        result[f"{name}_cpu_ms"] = round((time.process_time() - started) / count * 1000, 3)
    result["poll_share_of_bare"] = round(result["bare_cpu_ms"] / result["poll_cpu_ms"], 3)
    result["v1_poll_share_of_bare"] = round(result["bare_cpu_ms"] / result["v1_poll_cpu_ms"], 3)
    return result


# --- 2. round trips -----------------------------------------------------------------------------


class RoundTrips:
    """Counts round trips on the app's connections from libpq's protocol trace."""

    def __init__(self, bench: Bench) -> None:
        self.path = bench.folder / "libpq.trace"
        self.file = self.path.open("w")
        self.connections: list[Any] = []
        engine = find_service(bench.registry, IDatabase).engine
        engine.dispose()  # connections made from now on are traced

        @sa.event.listens_for(engine, "connect")
        def trace(dbapi_connection: Any, _record: Any) -> None:
            self.connections.append(dbapi_connection)
            self._trace(dbapi_connection)

    def _trace(self, dbapi_connection: Any) -> None:
        from psycopg.pq import Trace

        dbapi_connection.pgconn.trace(self.file.fileno())
        dbapi_connection.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)

    def _seen(self) -> int:
        # libpq buffers its trace: stopping it flushes what it holds; then it starts again.
        for connection in self.connections:
            if not connection.closed:
                connection.pgconn.untrace()
                self._trace(connection)
        return self.path.read_text().count("ReadyForQuery")

    def count(self, fn: Any) -> int:
        before = self._seen()
        fn()
        return self._seen() - before


def round_trips(bench: Bench, cookie: str, gid: str, pending: str, key: str) -> dict[str, int]:
    def get(path: str) -> None:
        headers = {"Host": "localhost"}
        if path.startswith("/v1/"):
            headers["Authorization"] = f"Bearer {key}"
        else:
            headers["Cookie"] = cookie
        response = Request.blank(path, headers=headers).get_response(bench.wsgi)
        assert response.status_int == 200, (path, response.status)

    counter = RoundTrips(bench)
    # Warm-up: the pool's connections exist, and psycopg has prepared the statements (it does
    # so on their 5th use on a connection, in a round trip of its own; the pool hands its
    # connections out in turn, so each needs five uses).
    for _ in range(30):
        get(f"/api/v1/generations/{gid}")
        get(f"/v1/generations/{gid}")
        get("/healthz")
    result = {
        "plain_poll": counter.count(lambda: get(f"/api/v1/generations/{gid}")),
        "v1_poll": counter.count(lambda: get(f"/v1/generations/{gid}")),
        "healthz": counter.count(lambda: get("/healthz")),
    }
    try:
        # Held, and woken when the job ends: the worker finishes it a moment later.
        result["held_poll_woken"] = counter.count(
            lambda: get(f"/api/v1/generations/{pending}?wait=25")
        )
    except (AssertionError, Exception) as exc:  # older code has no ?wait
        result["held_poll_woken"] = f"n/a ({type(exc).__name__})"  # type: ignore[assignment]
    return result


# --- 3. provider done -> answered --------------------------------------------------------------


def provider_done(bench: Bench, gid: str) -> tuple[dt.datetime, dt.datetime]:
    """When the provider returned (the key attempt's row) and when the job's finish committed
    its state (``finished_at``), both stamped by the worker."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with bench.session() as db:
            attempt = db.scalar(sa.select(KeyAttempt).where(KeyAttempt.reference == gid))
            finished = db.scalar(sa.select(Generation.finished_at).where(Generation.id == gid))
        if attempt is not None and finished is not None:
            return attempt.created_at, finished
        time.sleep(0.05)
    raise RuntimeError(f"no attempt for {gid}")


def wake(bench: Bench, server: Server, client: Any, count: int) -> dict[str, Any]:
    cookie = cookie_of(client)
    result: dict[str, Any] = {}
    modes = {"plain_poll_every_1s": "", "held_poll": "?wait=25"}
    for mode, query in modes.items():
        delays, after_finish = [], []
        for _ in range(count):
            gid = bench.submit(client)
            while True:
                sent = time.monotonic()
                status, body = server.get(f"/api/v1/generations/{gid}{query}", cookie)
                assert status == 200, body
                if body["status"] in ("succeeded", "failed", "partial"):
                    answered = dt.datetime.now(dt.UTC)
                    break
                if query and time.monotonic() - sent < 0.2:
                    return {**result, mode: "n/a (the server does not hold polls)"}
                if not query:
                    time.sleep(1.0)
            returned, finished = provider_done(bench, gid)
            delays.append((answered - returned).total_seconds())
            after_finish.append((answered - finished).total_seconds())
        result[mode] = {
            "p50_ms": ms(percentile(delays, 50)),
            "p95_ms": ms(percentile(delays, 95)),
            # Of which: from the finish's commit to the answer (the rest is the worker's
            # storing the image and settling the quota).
            "after_finish_p50_ms": ms(percentile(after_finish, 50)),
            "after_finish_p95_ms": ms(percentile(after_finish, 95)),
        }
    return result


# --- 4. 500 held polls -------------------------------------------------------------------------


def other_requests(server: Server, cookie: str, gid: str, rounds: int) -> dict[str, float]:
    seconds = []
    for _ in range(rounds):
        for path in ("/api/v1/conversations", "/api/v1/me", f"/api/v1/generations/{gid}"):
            started = time.perf_counter()
            status, _ = server.get(path, cookie)
            seconds.append(time.perf_counter() - started)
            assert status == 200, path
    return {"p50_ms": ms(percentile(seconds, 50)), "p95_ms": ms(percentile(seconds, 95))}


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return round(total / 1024, 1)


def held(bench: Bench, server: Server, client: Any, gid: str, count: int) -> dict[str, Any]:
    cookie = cookie_of(client)
    bench.stop_worker()  # the held jobs must not finish during the measurement
    pending = [bench.submit(client) for _ in range(count)]
    other_requests(server, cookie, gid, 10)
    before = other_requests(server, cookie, gid, 40)
    rss_before = rss_mb(server.pids())
    answers: list[int] = []
    go = threading.Barrier(count + 1)

    def hold(pending_id: str) -> None:
        go.wait()
        status, _ = server.get(f"/api/v1/generations/{pending_id}?wait=25", cookie)
        answers.append(status)

    threads = [threading.Thread(target=hold, args=(p,), daemon=True) for p in pending]
    for thread in threads:
        thread.start()
    go.wait()
    time.sleep(2.0)  # every poll is in and held
    held_now = count - len(answers)
    during = other_requests(server, cookie, gid, 40)
    rss_during = rss_mb(server.pids())
    for thread in threads:
        thread.join(60)
    return {
        "held_polls": held_now,
        "other_requests_without": before,
        "other_requests_while_held": during,
        "web_rss_mb_before": rss_before,
        "web_rss_mb_while_held": rss_during,
        "held_answered_200": answers.count(200),
    }


# --- 5. browser --------------------------------------------------------------------------------


SEND_AND_TIME = """(n) => new Promise((resolve, reject) => {
  const started = performance.now();
  document.querySelector("#send").click();
  const timer = setInterval(() => {
    const turn = document.querySelectorAll(".turn")[n];
    const image = turn && turn.querySelector(".tile img");
    if (image && image.complete && image.naturalWidth > 0) {
      clearInterval(timer);
      resolve(performance.now() - started);
    } else if (performance.now() - started > 60000) {
      clearInterval(timer);
      reject(new Error("no image within 60 s"));
    }
  }, 5);
})"""


def browser(bench: Bench, server: Server, count: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    email = bench.paying_user()
    overheads = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = chromium.new_page()
        page.goto(f"{server.url}/login")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url(f"{server.url}/dashboard")
        page.goto(f"{server.url}/chat")
        page.click("#new-chat")
        for n in range(count):
            page.fill("#prompt", f"a lighthouse number {n}")
            # Timed inside the page: from the click to the image decoded, checked every 5 ms
            # (Playwright's own waits poll at up to a second, which would be in the figure).
            shown_ms = page.evaluate(SEND_AND_TIME, n)
            gid = page.locator(".turn").nth(n).get_attribute("data-generation-id")
            with bench.session() as db:
                attempt = db.scalar(sa.select(KeyAttempt).where(KeyAttempt.reference == gid))
            overheads.append(shown_ms / 1000 - attempt.latency_ms / 1000)
        chromium.close()
    return {
        "sends": count,
        "send_to_image_minus_provider_p50_ms": ms(percentile(overheads, 50)),
        "send_to_image_minus_provider_p95_ms": ms(percentile(overheads, 95)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("gunicorn", "waitress"), default="gunicorn")
    parser.add_argument("--seconds", type=int, default=10, help="each wrk run")
    parser.add_argument("--wakes", type=int, default=40, help="jobs for the wake figure")
    parser.add_argument("--held", type=int, default=500, help="polls held at once")
    parser.add_argument("--browser", action="store_true", help="also the browser figure")
    parser.add_argument("--browser-sends", type=int, default=20)
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: any free)")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="nproxy-bench-poll-"))
    bench = Bench(folder)
    # The API's poll is hammered by one key: its rate limit must not be what is measured.
    bench.settings["nproxy.api.rate_limit"] = "100000000/minute"
    bench.create()
    server = None
    try:
        client = bench.customer()
        cookie = cookie_of(client)
        key = client.post_json(
            "/api/v1/api-keys", {"name": "bench"}, headers={"X-CSRF-Token": client.csrf}
        ).json["key"]
        bench.start_worker(0.5)
        finished = bench.submit(client)
        bench.wait_all([finished])
        server = Server(bench, args.server, args.port)
        print(f"server         {args.server}", flush=True)
        print("cpu           ", cpu(bench, cookie, finished, key), flush=True)
        print("throughput    ", throughput(server, cookie, finished, args.seconds, key), flush=True)
        pending = bench.submit(client)
        print("round trips   ", round_trips(bench, cookie, finished, pending, key), flush=True)
        print("wake          ", wake(bench, server, client, args.wakes), flush=True)
        if args.browser:
            bench.start_worker(1.5)
            print("browser       ", browser(bench, server, args.browser_sends), flush=True)
        if args.server == "gunicorn":
            print("held          ", held(bench, server, client, finished, args.held), flush=True)
    finally:
        if server is not None:
            server.stop()
        bench.drop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
