"""Fixtures for the developer API: the generation tests' worker processes, RabbitMQ vhost and
paying customers, and a client that speaks Bearer keys."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import webtest

from generation.conftest import (  # noqa: F401 - fixtures shared with the generation tests
    add_key,
    broker_url,
    customer_factory,
    start_process,
    start_worker,
    worker_settings,
)
from generation_support import Customer, SharedWorker


class Developer:
    """A subscriber with an API key, calling ``/v1/*`` with no cookies at all."""

    def __init__(self, app: webtest.TestApp, customer: Customer, key: str, key_id: str) -> None:
        self.app = webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"})
        self.customer = customer
        self.key = key
        self.key_id = key_id

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", **extra}

    def generate(self, body: dict[str, Any], **headers: str) -> webtest.TestResponse:
        return self.app.post_json("/v1/generate", body, headers=self.headers(**headers), status="*")

    def get(self, url: str, **headers: str) -> webtest.TestResponse:
        return self.app.get(url, headers=self.headers(**headers), status="*")


@pytest.fixture(scope="module")
def module_worker(
    base_settings: dict[str, Any], engine: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedWorker]:
    """One worker for the module's tests that leave it running, with ``worker_settings``' demo
    delay, on a virtual host of its own: their apps send to ``module_worker.broker_url``."""
    folder = tmp_path_factory.mktemp("worker")
    shared = SharedWorker(
        {
            **base_settings,
            "celery.beat_schedule_file": str(folder / "celerybeat-schedule"),
            "demo.delay_seconds": "0.05",
        },
        folder,
        f"nproxy_test_{os.getpid()}_{folder.name}",
        engine,
    )
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def developer_factory(customer_factory: Callable[..., Customer]) -> Callable[..., Developer]:  # noqa: F811
    def make(app: webtest.TestApp, **kw: Any) -> Developer:
        customer = customer_factory(app, **kw)
        created = customer.api.post("/api/v1/api-keys", {"name": "tests"})
        assert created.status_int == 201, created.text
        return Developer(app, customer, created.json["key"], created.json["id"])

    return make
