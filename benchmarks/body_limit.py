"""Memory of a real web process fed ten 100 MB request bodies (DESIGN 9: bodies over
``nproxy.max_body_bytes`` are refused before they are read).

Starts ``pserve`` (waitress) on an ini like production's, on 127.0.0.1, twice:

1. *as shipped*: waitress's own ``max_request_body_size`` (16 MiB) in force;
2. *app only*: waitress's limit raised to 1 GiB, so every body reaches the app and only the
   app's gate stands between it and the process's memory.

Each time it reads the process's resident memory (VmRSS) after a few ordinary requests, sends
ten anonymous ``POST /api/v1/auth/login`` bodies of 100 MB (five with Content-Length, five
chunked; the bytes are generated as they are sent, so the client holds none of them), and
reads it again. It prints the answers and the growth. The app needs no database for this
(a refused body never reaches a view), so it runs on a throwaway SQLite file.

    .venv/bin/python benchmarks/body_limit.py [--bodies 10] [--megabytes 100]
"""

from __future__ import annotations

import argparse
import http.client
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PSERVE = str(Path(sys.executable).parent / "pserve")
CHUNK = b"[" * (1024 * 1024)

INI = """
[app:main]
use = egg:nproxy
nproxy.env = development
nproxy.secret = benchmark-secret-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
nproxy.public_url = http://127.0.0.1:{port}
sqlalchemy.url = sqlite:///{folder}/bench.sqlite
nproxy.storage = local
storage.local.path = {folder}/media
nproxy.mailer = dummy
celery.broker_url = memory://

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{port}
threads = 4
max_request_body_size = {server_limit}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pserve exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("pserve did not start")


def body(megabytes: int) -> Iterator[bytes]:
    for _ in range(megabytes):
        yield CHUNK


def send(port: int, megabytes: int, chunked: bool) -> str:
    """POST a ``megabytes`` MB body; the answer's status, or what happened to the connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    if not chunked:
        headers["Content-Length"] = str(megabytes * len(CHUNK))
    try:
        connection.request(
            "POST",
            "/api/v1/auth/login",
            body=body(megabytes),
            headers=headers,
            encode_chunked=chunked,
        )
        response = connection.getresponse()
        response.read()
        return str(response.status)
    except (BrokenPipeError, ConnectionResetError):
        # The server answered and closed while the body was still being sent: its answer
        # may still be waiting in the socket.
        try:
            response = http.client.HTTPResponse(connection.sock)
            response.begin()
            return f"{response.status} (closed early)"
        except (OSError, http.client.HTTPException):
            return "closed early"
    finally:
        connection.close()


def ordinary_requests(port: int) -> None:
    for _ in range(20):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/v1/session")
        connection.getresponse().read()
        connection.close()


def run(label: str, server_limit: int, bodies: int, megabytes: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory(prefix="nproxy-bench-") as folder:
        port = free_port()
        ini = Path(folder, "bench.ini")
        ini.write_text(INI.format(port=port, folder=folder, server_limit=server_limit))
        process = subprocess.Popen(
            [PSERVE, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(port, process)
            ordinary_requests(port)
            before = rss_kib(process.pid)
            answers = [send(port, megabytes, chunked=n % 2 == 1) for n in range(bodies)]
            time.sleep(0.5)
            ordinary_requests(port)
            after = rss_kib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"{label}: answers {answers}")
    print(
        f"{label}: RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after "
        f"{bodies} bodies of {megabytes} MB: growth {(after - before) / 1024:+.1f} MiB"
    )
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=10)
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    run("as shipped (waitress limit 16 MiB)", 16 * 1024 * 1024, args.bodies, args.megabytes)
    run("app only (waitress limit 1 GiB)", 1024**3, args.bodies, args.megabytes)


if __name__ == "__main__":
    main()
