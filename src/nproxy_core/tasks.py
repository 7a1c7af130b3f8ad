"""Background jobs: one Celery app per configuration, kept on the registry, built from the same
configuration as the web app.

A task is a plain function ``fn(request, *ids)`` declared with :func:`task`; each feature scans
its ``tasks`` module (``config.scan(..., categories=TASKS)``), which attaches the function to
this configuration's Celery app, as warehouse does. The task body runs inside a transaction
with a database session of its own, committed when it returns. A task requested during a web
request is sent only after that request's transaction commits (``request.enqueue``), so a
worker never sees an uncommitted row; a failed send is picked up by the feature's sweeper.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import celery
import venusian
from celery.schedules import crontab
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.threadlocal import RequestContext

from nproxy_core import logs
from nproxy_core.db import is_disconnect, is_unreachable
from nproxy_core.plugins import positive_int, setting
from nproxy_core.wiring import prepare_request

log = logging.getLogger(__name__)

#: The venusian category of task declarations: ``config.scan(module, categories=TASKS)``.
TASKS = ("nproxy.tasks",)
#: Where the Celery app of a configuration lives.
CELERY_APP = "celery.app"
#: The message header that carries the request id of the web request that sent a task.
REQUEST_ID_HEADER = "nproxy_request_id"
#: Stack reserved per worker thread. A worker keeps hundreds of threads (its pool, and one per
#: provider attempt) that mostly wait on sockets; the default 8 MiB of address space each is
#: sized for deep C recursion none of them does. Python code recurses on the heap (3.11+).
WORKER_THREAD_STACK_BYTES = 1024 * 1024
#: A task that could not reach the database runs again after 0.5, 1, 2, 4, 8, then every 10 s.
UNREACHABLE_FIRST_DELAY = 0.5
UNREACHABLE_MAX_DELAY = 10.0


class DatabaseUnreachable(Exception):
    """Raised by a task body that could not reach the database after it began its work: the
    task runs again in a few seconds, with ``retry_kwargs`` added to its keyword arguments
    (what the next run needs to take up where this one stopped)."""

    def __init__(self, retry_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__("the database could not be reached")
        self.retry_kwargs = retry_kwargs or {}


def unreachable_delay(retries: int) -> float:
    """Seconds before the next run of a task that could not reach the database ``retries``
    times already."""
    return min(UNREACHABLE_MAX_DELAY, UNREACHABLE_FIRST_DELAY * 2 ** min(retries, 10))


def worker_concurrency(settings: Any) -> int:
    """``nproxy.worker.concurrency``: tasks (so provider calls) in flight per worker process."""
    return setting(settings, "nproxy.worker.concurrency", default=256, cast=positive_int)


def size_worker_threads() -> None:
    """Give threads started from now on the worker's small stack (call before the pool starts)."""
    threading.stack_size(WORKER_THREAD_STACK_BYTES)


class NproxyTask(celery.Task):
    """Runs the task body inside a transaction with a database session of its own.

    A body that cannot reach the database (refused, cut, no pooled connection free) is sent
    again in a few seconds (:func:`unreachable_delay`), at most :attr:`unreachable_retries`
    times (None: until it gets through), instead of failing: nothing it was asked to do is
    left for a sweeper to find minutes later.
    """

    abstract = True
    typing = False
    #: Runs again after the database could not be reached; None: no limit.
    unreachable_retries: int | None = 30

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Celery's own __call__ keeps its task stack; the body gets the request first.
        body = super().__call__
        # The web request that sent the job names it in the worker's logs too.
        request_id = getattr(self.request, REQUEST_ID_HEADER, None) or self.request.id
        with logs.log_context(request_id=request_id):
            try:
                return _run_in_transaction(self.app.pyramid_registry, body, args, kwargs)
            except Exception as exc:
                if self.request.called_directly or not (
                    isinstance(exc, DatabaseUnreachable) or is_unreachable(exc)
                ):
                    raise
                delay = unreachable_delay(self.request.retries or 0)
                cause = (exc.__cause__ or exc) if isinstance(exc, DatabaseUnreachable) else exc
                # Only the error's first line: the server's refusal, not the statement's values.
                reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
                log.warning(
                    "%s could not reach the database (%s); it runs again in %.1f s",
                    self.name,
                    reason,
                    delay,
                )
                raise self.retry(
                    args=args,
                    kwargs={**kwargs, **getattr(exc, "retry_kwargs", {})},
                    countdown=delay,
                    max_retries=self.unreachable_retries,
                    exc=exc,
                ) from exc


def _run_in_transaction(registry: Registry, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    try:
        return _run_once(registry, fn, args, kwargs)
    except Exception as exc:
        # Pooled connections are not pinged (db.py): after a database restart the first use of
        # one fails, and the pool is renewed. The body's transaction was lost with it, so the
        # body runs once more on a fresh connection (task bodies are safe to run twice).
        if not is_disconnect(exc):
            raise
        log.warning("%s: the database connection was lost; running it again", fn.__name__)
        return _run_once(registry, fn, args, kwargs)


def _run_once(registry: Registry, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    request = prepare_request(registry)
    with RequestContext(request):
        try:
            with request.tm:
                return fn(request, *args, **kwargs)
        finally:
            request.db.close()


def task(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a task. The function receives ``(request, *args)``; arguments are ids."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = options.pop("name", f"{fn.__module__}.{fn.__name__}")
        fn.task_name = name  # type: ignore[attr-defined]

        def attach(scanner: Any, _name: str, wrapped: Callable[..., Any]) -> None:
            scanner.config.registry[CELERY_APP].task(name=name, **options)(wrapped)

        venusian.attach(fn, attach, category=TASKS[0])
        return fn

    return decorator


def celery_task(registry: Registry, fn: Callable[..., Any]) -> celery.Task:
    """The Celery task of this configuration for a function declared with :func:`task`."""
    return registry[CELERY_APP].tasks[fn.task_name]


def run_now(registry: Registry, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a task's body in this process, in its own transaction (commands, tests)."""
    return _run_in_transaction(registry, fn, args, kwargs)


def task_sender(registry: Registry, fn: Callable[..., Any]) -> Callable[..., None]:
    """A function that sends ``fn``'s task with the given arguments (for sweepers)."""

    def send(*args: Any) -> None:
        celery_task(registry, fn).apply_async(args)

    return send


def request_task(request: Request, fn: Callable[..., Any]) -> celery.Task:
    return celery_task(request.registry, fn)


def enqueue(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Send a task once the request's transaction commits, never before."""

    def send(committed: bool) -> None:
        if not committed:
            return
        try:
            headers = {REQUEST_ID_HEADER: getattr(request, "request_id", None)}
            celery_task(request.registry, fn).apply_async(args, kwargs, headers=headers)
        except Exception:
            # The row is committed; the sweeper will send the job again.
            log.exception("could not enqueue %s%r after commit", fn.task_name, args)

    request.tm.get().addAfterCommitHook(send)


def _schedule(value: Any) -> Any:
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    return value


def make_celery_app(registry: Registry) -> celery.Celery:
    """The Celery app for this configuration; tasks attach to it as features are scanned."""
    settings = registry.settings
    broker_url = settings.get("celery.broker_url") or "memory://"
    app = celery.Celery("nproxy", task_cls=NproxyTask, set_as_current=True)
    transport_options: dict[str, Any] = {}
    if broker_url.startswith("amqp"):
        # Without publisher confirms, a publish to a missing exchange "succeeds" and is lost.
        transport_options["confirm_publish"] = True
    if broker_url.startswith("filesystem"):
        folder = settings.get("celery.filesystem_folder", "var/queue")
        os.makedirs(folder, exist_ok=True)
        control = os.path.join(folder, "control")  # kombu's default is ./control, in any cwd
        os.makedirs(control, exist_ok=True)
        transport_options.update(
            data_folder_in=folder, data_folder_out=folder, control_folder=control
        )
    app.conf.update(
        broker_url=broker_url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A task is acknowledged after it ran: one lost with its worker is redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        # One thread per task: the pool's size is the number of provider calls in flight, and
        # the broker hands this process exactly that many unacknowledged messages.
        worker_pool="threads",
        worker_concurrency=worker_concurrency(settings),
        worker_prefetch_multiplier=1,
        # Nothing here inspects or commands workers remotely; without it, two workers with one
        # node name (two on one host, no -n) do not fight over the node's exclusive queue.
        worker_enable_remote_control=False,
        task_default_delivery_mode="persistent",
        task_queue_ha_policy=None,
        # RabbitMQ's consumer_timeout is 30 minutes: stay below it.
        task_time_limit=int(settings.get("celery.task_time_limit", 20 * 60)),
        task_soft_time_limit=int(settings.get("celery.task_soft_time_limit", 18 * 60)),
        worker_hijack_root_logger=False,
        task_always_eager=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule={},
    )
    app.pyramid_registry = registry
    return app


def add_periodic_task(config: Any, name: str, fn: Callable[..., Any], schedule: Any) -> None:
    """Run task ``fn`` on a schedule (seconds, a timedelta or a crontab) from ``nproxy beat``."""
    schedules = config.registry[CELERY_APP].conf.beat_schedule
    schedules[name] = {"task": fn.task_name, "schedule": _schedule(schedule)}


def includeme(config: Any) -> None:
    config.registry[CELERY_APP] = make_celery_app(config.registry)
    config.add_directive("add_periodic_task", add_periodic_task)
    config.add_request_method(enqueue, "enqueue")
    config.add_request_method(request_task, "task")


__all__ = [
    "TASKS",
    "DatabaseUnreachable",
    "add_periodic_task",
    "celery_task",
    "crontab",
    "enqueue",
    "run_now",
    "task",
    "task_sender",
    "worker_concurrency",
]
