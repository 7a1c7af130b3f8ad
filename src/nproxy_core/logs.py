"""Logs (DESIGN 4.11): one JSON object per line in production, each carrying the request id and,
where known, the user, generation and payment it is about.

The standard library's logging throughout (no second logging system): the context lives in
context variables, set by the request-id tween for a web request and by the task runner for a
job (the id travels with the task in a message header), and :class:`JsonFormatter` reads them,
so every logger of every library gets them without a filter (``fileConfig`` cannot set one).
Every answer carries the id in ``X-Request-Id``; a sane one sent by the client (or Caddy) is
kept, so one id follows a request from the proxy to the worker.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from pyramid.tweens import INGRESS

FIELDS = ("request_id", "user_id", "generation_id", "payment_id")
_CONTEXT: dict[str, contextvars.ContextVar[Any]] = {
    name: contextvars.ContextVar(f"nproxy_log_{name}", default=None) for name in FIELDS
}
#: An id a client may choose: short and plain, never anything that could forge a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
HEADER = "X-Request-Id"


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
        with log_context(request_id=request_id, user_id=None):
            response = handler(request)
        response.headers[HEADER] = request_id
        return response

    return request_id_tween


def includeme(config: Any) -> None:
    # Outermost of the tweens: every log line of the request, and every answer, has the id.
    config.add_tween("nproxy_core.logs.request_id_tween_factory", under=INGRESS)
