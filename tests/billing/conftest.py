"""Fixtures for billing tests: the fake NOWPayments server, an app with it enabled, a real
HTTP server for the app, and helpers to arrange cycles and payments."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import waitress.server
import webtest

from apiclient import ApiClient
from fakes.nowpayments import FakeNowPayments


@pytest.fixture
def fake() -> Iterator[FakeNowPayments]:
    with FakeNowPayments() as server:
        yield server


@pytest.fixture
def np_settings(fake: FakeNowPayments) -> dict[str, str]:
    """Setting overrides (make_app style) enabling NOWPayments against the fake, and demo."""
    return {
        "nproxy__payments": "nowpayments demo",
        "nowpayments__api_base": fake.api_base,
        "nowpayments__api_key": fake.api_key,
        "nowpayments__ipn_secret": fake.ipn_secret,
        "nowpayments__timeout_seconds": "5",
    }


@pytest.fixture
def demo_app(make_app: Callable[..., webtest.TestApp]) -> webtest.TestApp:
    """An app selling through the demo processor only."""
    return make_app(nproxy__payments="demo")


@pytest.fixture
def demo_api(demo_app: webtest.TestApp) -> ApiClient:
    return ApiClient(demo_app)


@pytest.fixture
def np_app(make_app: Callable[..., webtest.TestApp], np_settings: dict[str, str]) -> Any:
    return make_app(**np_settings)


@pytest.fixture
def np_api(np_app: webtest.TestApp) -> ApiClient:
    return ApiClient(np_app)


class LiveServer:
    """The real WSGI app behind waitress on 127.0.0.1, for tests that need real HTTP."""

    def __init__(self) -> None:
        self.app: Any = None
        self.server = waitress.server.create_server(
            lambda environ, start: self.app(environ, start),
            host="127.0.0.1",
            port=0,
            threads=12,
            connection_limit=200,
            clear_untrusted_proxy_headers=True,
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
    """A bound port first, so the app's public URL (its IPN callback) can point at it."""
    server = LiveServer()
    yield server
    server.stop()
