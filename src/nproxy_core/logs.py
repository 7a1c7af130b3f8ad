"""Logs (DESIGN 4.11): one JSON object per line in production, each carrying the request id and,
where known, the user, generation and payment it is about.

The standard library's logging throughout (no second logging system): the context lives in
context variables, set by the request-id tween for a web request and by the task runner for a
job (the id travels with the task in a message header), and :class:`JsonFormatter` reads them,
so every logger of every library gets them without a filter (``fileConfig`` cannot set one).
Every answer carries the id in ``X-Request-Id``; a sane one sent by the client (or Caddy) is
kept, so one id follows a request from the proxy to the worker.

Every web request ends in one access line (logger ``nproxy.access``: method, route pattern, path
without its query, status, duration), written by the app itself, so it is the same under
gunicorn, waitress and ``nproxy dev``. The query string is never logged: it carries password
reset tokens and signed media links.

Celery's worker and beat keep the logging the ini file set up (:func:`keep_the_ini_logging`):
left to itself Celery adds plain-text handlers and raises the root logger to ``--loglevel``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pyramid_retry
from celery import signals
from pyramid.tweens import INGRESS

FIELDS = ("request_id", "user_id", "generation_id", "payment_id")
_CONTEXT: dict[str, contextvars.ContextVar[Any]] = {
    name: contextvars.ContextVar(f"nproxy_log_{name}", default=None) for name in FIELDS
}
#: An id a client may choose: short and plain, never anything that could forge a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
HEADER = "X-Request-Id"
#: What an access line adds (``extra=``); no other attribute of a record is ever written.
ACCESS_FIELDS = ("method", "route", "path", "status", "duration_ms")
access_log = logging.getLogger("nproxy.access")


def current(name: str) -> Any:
    return _CONTEXT[name].get()


def bind(**values: Any) -> None:
    """Add to the current context (until the request or job ends)."""
    for name, value in values.items():
        _CONTEXT[name].set(None if value is None else str(value))


@contextlib.contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """The context for a block (a request, a job); what was there before comes back after."""
    tokens = [
        (_CONTEXT[name], _CONTEXT[name].set(None if value is None else str(value)))
        for name, value in values.items()
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def new_request_id(offered: str | None = None) -> str:
    if offered and _REQUEST_ID.match(offered):
        return offered
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """``{"timestamp", "level", "logger", "message", "request_id", ...}`` on one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A process that writes JSON lines sends Python's warnings through logging as well:
        # printed by the warnings module, they would be plain text on stderr.
        logging.captureWarnings(True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None) or _CONTEXT[name].get()
            if value is not None:
                entry[name] = value
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def request_id_tween_factory(handler: Callable[[Any], Any], registry: Any) -> Callable:
    def request_id_tween(request: Any) -> Any:
        # Kept in the environ: an attempt pyramid_retry runs again is the same request.
        request_id = request.environ.setdefault(
            "nproxy.request_id", new_request_id(request.headers.get(HEADER))
        )
        request.request_id = request_id
        started = time.perf_counter()
        with log_context(request_id=request_id, user_id=None):
            try:
                response = handler(request)
            except Exception as exc:
                log_access(request, 500, started, exc)
                raise
            log_access(request, response.status_int, started, request.exception)
        response.headers[HEADER] = request_id
        return response

    return request_id_tween


def writes_json() -> bool:
    """Whether this process's log lines are JSON (production's logging sections are in effect):
    then nothing else may be printed, not even a banner."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def log_access(request: Any, status: int, started: float, exc: BaseException | None) -> None:
    """The request's access line, in its context (request id, user). An attempt that
    pyramid_retry runs again has none: the last attempt's answer is the request's."""
    if exc is not None and pyramid_retry.is_error_retryable(request, exc):
        return
    route = request.matched_route.pattern if request.matched_route else None
    # PATH_INFO is latin-1 text of the raw bytes; never the query string (tokens, signatures).
    path = (
        request.environ.get("PATH_INFO", "").encode("latin-1", "replace").decode("utf-8", "replace")
    )
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    access_log.info(
        "%s %s %d %.1f ms",
        request.method,
        path,
        status,
        duration_ms,
        extra={
            "method": request.method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
        },
    )


def includeme(config: Any) -> None:
    # Outermost of the tweens: every log line of the request, and every answer, has the id.
    config.add_tween("nproxy_core.logs.request_id_tween_factory", under=INGRESS)


# --- Celery's worker and beat ------------------------------------------------------------------


@signals.setup_logging.connect(weak=False)
def keep_the_ini_logging(loglevel: Any = None, **_: Any) -> None:
    """Celery sets up no logging of its own (a receiver here tells it so): the ini file's
    sections did it as the command started. ``--loglevel`` sets Celery's own loggers."""
    if not logging.getLogger().handlers:  # an ini file without logging sections
        logging.basicConfig(format="%(asctime)s %(levelname)-5.5s [%(name)s] %(message)s")
    if loglevel:
        logging.getLogger("celery").setLevel(loglevel)


@signals.celeryd_after_setup.connect(weak=False)
def _worker_output(sender: Any = None, instance: Any = None, **_: Any) -> None:
    _redirect_output(instance.app)


@signals.beat_init.connect(weak=False)
def _beat_output(sender: Any = None, **_: Any) -> None:
    _redirect_output(sender.app)


def _redirect_output(app: Any) -> None:
    # What Celery does when it sets up logging itself (worker_redirect_stdouts, on by default):
    # anything a library prints becomes a log line (logger celery.redirected), so JSON too.
    if not app.conf.worker_redirect_stdouts:
        return
    app.log.redirect_stdouts(app.conf.worker_redirect_stdouts_level)
    if writes_json():
        # The worker's signal handlers write "worker: Warm shutdown" straight to the file
        # behind sys.__stdout__, as plain text; with no file behind them they write nothing,
        # and _worker_shutting_down says it as a log line instead.
        sys.__stdout__ = sys.stdout
        sys.__stderr__ = sys.stderr


@signals.worker_shutting_down.connect(weak=False)
def _worker_shutting_down(sig: str = "", how: str = "", **_: Any) -> None:
    if writes_json():
        logging.getLogger("celery.apps.worker").info("worker: %s shutdown (%s)", how, sig)
