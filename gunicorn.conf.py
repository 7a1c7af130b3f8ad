"""gunicorn in production: ``gunicorn --config gunicorn.conf.py --paste production.ini``.

Why these numbers (measured with ``benchmarks/poll.py``):

- ``gthread`` workers: a request runs on a thread; idle keep-alive connections wait in the
  worker's poller, not on a thread. A held poll (``?wait=N``, the developer API's wait) blocks
  its thread on an Event, costing no CPU and no database connection, so the right size is
  "threads >= requests held at once + a margin for the rest". 500 held polls left the chat's
  other requests as fast as with none (the benchmark's figures).
- 2 processes: a small VPS has 2 cores; more processes cost memory (one app each) for no
  gain on I/O-bound work, while two keep one serving when the other restarts.
- Graceful restarts: ``kill -HUP`` starts new workers and retires the old ones, which finish
  their requests within ``graceful_timeout``; a held poll whose connection is cut is polled
  again by the chat (it falls back to plain polling), and an API client polls its Location.

Every number can be changed from the environment (``WEB_WORKERS``, ``WEB_THREADS``, ...).
"""

from __future__ import annotations

import os
from typing import Any

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "400"))
# Connections a worker keeps at once: every held request, every keep-alive connection.
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "2000"))
# Longer than Caddy's idle keep-alive to its upstream, so gunicorn never closes first.
keepalive = int(os.environ.get("WEB_KEEPALIVE", "75"))
# A gthread worker reports from its main loop, so held requests never look like a hang.
timeout = 60
# Requests in flight finish within this on a restart.
graceful_timeout = 30
# Recycled now and then (with jitter, so both never restart together): bounds any slow leak.
max_requests = 20000
max_requests_jitter = 2000
# Caddy's address(es): X-Forwarded-Proto is trusted only from them. compose.yml sets it.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Logging is the ini's sections (gunicorn applies them itself): one JSON object per line, gunicorn's
# own lines included. The app writes one line per request (logger nproxy.access, with the route,
# status, duration and request id), so gunicorn's access log stays off.
accesslog = None
errorlog = "-"
# No control socket (gunicorn >= 25): nothing here uses gunicornc, and several servers on one
# host (tests, benchmarks) would fight over the one default path.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Build the app's configuration once in the master, before the port opens or a worker
    forks: a configuration error stops gunicorn with one line and a non-zero exit, as it stops
    the CLI. (In a worker it would not: gunicorn restarts a worker that exits, over and over,
    with the port open and /healthz silent.) The workers then fork with the app's modules
    already imported."""
    if server.cfg.paste is None:
        return
    from pyramid.paster import get_appsettings

    from nproxy_core.config import ConfigurationError, configure

    try:
        configure(get_appsettings(server.app.app_uri)).commit()
    except ConfigurationError as exc:
        # One line, through gunicorn's logger (JSON, as every other), then a plain exit 1.
        server.log.error("nproxy: configuration error: %s", exc)
        raise SystemExit(1) from None


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exits leaves its counters (they still count) but not its live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
