"""How a collaborator is found: as a pyramid_services service, from a request.

Work outside HTTP (Celery tasks, commands, the dev server, tests) makes itself a request with
:func:`prepare_request` and asks it, exactly as a view would; :func:`find_service` is the
shortcut. A service that depends on other services, and must be one shared object (it holds
threads, pools or an engine), is registered with :func:`register_shared_service`: it is built
on first use, from the services it needs, then shared by every request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import transaction
from pyramid.registry import Registry
from pyramid.request import Request, apply_request_extensions

__all__ = ["find_service", "prepare_request", "register_shared_service"]


def prepare_request(registry: Registry) -> Request:
    """A Pyramid request for work outside HTTP: route_url answers with the public URL, and
    ``request.db`` belongs to ``request.tm``, a transaction manager of its own."""
    request = Request.blank("/", base_url=registry.settings["nproxy.public_url"])
    request.registry = registry
    request.tm = transaction.TransactionManager(explicit=True)
    # request.db, find_service and the other request methods exist only once applied.
    apply_request_extensions(request)
    return request


def find_service(registry: Registry, iface: Any, name: str = "") -> Any:
    """The service ``iface`` of a configured registry, found as a request finds it."""
    return prepare_request(registry).find_service(iface, name=name)


class _SharedService:
    """A service factory that builds its service once, on first use, from the request."""

    def __init__(self, build: Callable[[Request], Any]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._service: Any = None

    def __call__(self, context: Any, request: Request) -> Any:
        if self._service is None:
            with self._lock:
                if self._service is None:
                    self._service = self._build(request)
        return self._service


def register_shared_service(config: Any, build: Callable[[Request], Any], iface: Any) -> None:
    """Register ``iface`` as one object built by ``build(request)`` the first time it is asked
    for; ``build`` finds the services it needs on that request."""
    config.register_service_factory(_SharedService(build), iface)
