"""Background jobs: one Celery app built from the same configuration as the web app.

Tasks are declared with :func:`task` and receive a request-like object whose ``db`` session is
joined to its own transaction, committed when the task returns. A task requested during a web
request is sent only after that request's transaction commits (:func:`enqueue`), so a worker
never sees an uncommitted row; a failed send is picked up by the feature's sweeper.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import celery
import transaction
from celery.schedules import crontab
from pyramid.registry import Registry
from pyramid.request import Request, apply_request_extensions
from pyramid.threadlocal import RequestContext

log = logging.getLogger(__name__)


class NproxyTask(celery.Task):
    """Runs the task body inside a transaction with a database session of its own."""

    abstract = True
    typing = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        registry = self.app.pyramid_registry
        request = make_task_request(registry)
        with RequestContext(request):
            try:
                with request.tm:
                    return super().__call__(request, *args, **kwargs)
            finally:
                request.db.close()


def make_task_request(registry: Registry) -> Request:
    """A Pyramid request for work outside HTTP: route_url answers with the public URL."""
    request = Request.blank("/", base_url=registry.settings["nproxy.public_url"])
    request.registry = registry
    request.tm = transaction.TransactionManager(explicit=True)
    # request.db and the other add_request_method extensions exist only once applied.
    apply_request_extensions(request)
    return request


#: Every task nproxy declares, by name; the Celery app registers them when it is built.
_TASKS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}


def task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Declare a task. The function receives ``(request, *args)``; arguments are ids."""

    def decorator(fn: Callable[..., Any]) -> Any:
        name = options.pop("name", f"{fn.__module__}.{fn.__name__}")
        _TASKS[name] = (fn, options)
        return _TaskHandle(name)

    return decorator


class _TaskHandle:
    """Stands for a declared task before and after the Celery app exists."""

    def __init__(self, name: str) -> None:
        self.name = name

    def get(self) -> celery.Task:
        return get_celery_app().tasks[self.name]

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.get().apply_async(args, kwargs)

    def apply_async(self, args: tuple = (), kwargs: dict | None = None, **options: Any) -> Any:
        return self.get().apply_async(args, kwargs or {}, **options)

    def run_now(self, registry: Registry, *args: Any, **kwargs: Any) -> Any:
        """Run the body in this process, in its own transaction (CLI, tests of the body)."""
        fn, _ = _TASKS[self.name]
        request = make_task_request(registry)
        with RequestContext(request):
            try:
                with request.tm:
                    return fn(request, *args, **kwargs)
            finally:
                request.db.close()


def enqueue(request: Request, handle: _TaskHandle, *args: Any, **kwargs: Any) -> None:
    """Send a task once the request's transaction commits, never before."""

    def send(committed: bool) -> None:
        if not committed:
            return
        try:
            handle.apply_async(args, kwargs)
        except Exception:
            # The row is committed; the sweeper will send the job again.
            log.exception("could not enqueue %s%r after commit", handle.name, args)

    request.tm.get().addAfterCommitHook(send)


_APP: celery.Celery | None = None


def get_celery_app() -> celery.Celery:
    if _APP is None:
        raise RuntimeError("the Celery app is not configured")
    return _APP


def _schedule(value: Any) -> Any:
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    return value


def make_celery_app(registry: Registry) -> celery.Celery:
    """Build the Celery app for this configuration and register every declared task."""
    global _APP
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
        transport_options.update(data_folder_in=folder, data_folder_out=folder)
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
        worker_prefetch_multiplier=1,
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
    for name, (fn, options) in _TASKS.items():
        app.task(name=name, **options)(fn)
    for name, (handle_name, schedule) in registry.get("nproxy.periodic", {}).items():
        app.conf.beat_schedule[name] = {"task": handle_name, "schedule": _schedule(schedule)}
    _APP = app
    return app


def add_periodic_task(config: Any, name: str, handle: _TaskHandle, schedule: Any) -> None:
    """Run ``handle`` on a schedule (seconds, a timedelta or a crontab) from ``nproxy beat``."""
    config.registry.setdefault("nproxy.periodic", {})[name] = (handle.name, schedule)


def includeme(config: Any) -> None:
    config.add_directive("add_periodic_task", add_periodic_task)
    config.add_request_method(enqueue, "enqueue")
    # Built once every feature has declared its tasks and schedules.
    config.action(None, lambda: make_celery_app(config.registry), order=10)


__all__ = ["add_periodic_task", "crontab", "enqueue", "get_celery_app", "task"]
