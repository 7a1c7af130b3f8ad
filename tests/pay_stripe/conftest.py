"""Fixtures for the Stripe tests: the fake Stripe API, an app selling through it, and a real
HTTP server for the app (helpers in ``pay_stripe.support``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import waitress.server
import webtest

from apiclient import ApiClient
from fakes.stripe import FakeStripe


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


@pytest.fixture
def stripe_settings(fake: FakeStripe) -> dict[str, str]:
    return {
        "nproxy__payments": "stripe demo",
        "stripe__api_base": fake.api_base,
        "stripe__secret_key": fake.secret_key,
        "stripe__webhook_secret": fake.webhook_secret,
        "stripe__timeout_seconds": "5",
    }


@pytest.fixture
def stripe_app(make_app: Callable[..., webtest.TestApp], stripe_settings: dict[str, str]) -> Any:
    return make_app(**stripe_settings)


@pytest.fixture
def stripe_api(stripe_app: webtest.TestApp) -> ApiClient:
    return ApiClient(stripe_app)


class LiveServer:
    """The real WSGI app behind waitress on 127.0.0.1 (concurrent deliveries)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.server = waitress.server.create_server(
            lambda environ, start: self.app(environ, start),
            host="127.0.0.1",
            port=0,
            threads=12,
            connection_limit=200,
        )
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, app: Any) -> None:
        self.app = app
        self.thread.start()

    def stop(self) -> None:
        self.server.close()
        self.server.task_dispatcher.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def live_server() -> Iterator[LiveServer]:
    server = LiveServer()
    yield server
    server.stop()
