"""Prometheus metrics (DESIGN 4.11): the counters and histograms the code records as it works,
and the tween that times every HTTP request by its route pattern.

Correct across processes: when ``PROMETHEUS_MULTIPROC_DIR`` is set (production: gunicorn's
workers and the Celery workers share one folder), prometheus_client writes each process's
values to files there and ``GET /metrics`` adds them up (see ``monitoring``). Without it (the
embedded default, the tests) the values live in this process.

Labels are bounded: route patterns (never raw paths), statuses, outcome classes, provider names
and projects; never a user id, an email or a key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from celery import signals
from prometheus_client import Counter, Gauge, Histogram
from pyramid.request import Request
from pyramid.response import Response

HTTP_REQUESTS = Counter(
    "nproxy_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "nproxy_http_request_duration_seconds",
    "Time to answer an HTTP request, by route pattern",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
GENERATIONS = Counter("nproxy_generations_total", "Generations finished", ["status"])
IMAGES = Counter("nproxy_images_total", "Images of finished generations", ["outcome"])
KEY_ATTEMPTS = Counter(
    "nproxy_key_attempts_total", "Provider calls, by outcome class", ["provider", "outcome"]
)
KEY_ATTEMPT_DURATION = Histogram(
    "nproxy_key_attempt_duration_seconds",
    "Time of one provider call",
    ["provider"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
FAILOVERS = Counter("nproxy_failovers_total", "Images that moved on to another key", ["provider"])
ESTIMATED_SPEND = Counter(
    "nproxy_estimated_spend_usd_total",
    "Estimated provider spend (USD)",
    ["provider", "project"],
)

#: Methods counted as themselves; anything else is "other" (labels stay bounded).
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def metrics_tween_factory(handler: Callable[[Request], Response], registry: Any) -> Callable:
    def metrics_tween(request: Request) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = handler(request)
            status = response.status_int
            return response
        finally:
            route = request.matched_route.pattern if request.matched_route else "unmatched"
            method = request.method if request.method in _METHODS else "other"
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_DURATION.labels(route).observe(time.perf_counter() - started)

    return metrics_tween


def includeme(config: Any) -> None:
    # Above the transaction: the time includes the commit. Each attempt of a request that
    # pyramid_retry runs again is counted (with the status it got).
    config.add_tween(
        "nproxy_core.metrics.metrics_tween_factory", over="pyramid_tm.tm_tween_factory"
    )


# --- the worker's heartbeat -------------------------------------------------------------------

WORKER_HEARTBEAT = Gauge(
    "nproxy_worker_heartbeat_timestamp_seconds",
    "When a worker last said it was alive (Unix time)",
    multiprocess_mode="max",
)
HEARTBEAT_SECONDS = 15.0


@signals.worker_ready.connect(weak=False)
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    def beat() -> None:
        while True:
            WORKER_HEARTBEAT.set(time.time())
            time.sleep(HEARTBEAT_SECONDS)

    threading.Thread(target=beat, name="nproxy-heartbeat", daemon=True).start()
