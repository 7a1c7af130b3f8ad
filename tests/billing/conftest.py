"""Fixtures for billing tests: the fake NOWPayments server, an app with it enabled, a real
HTTP server for the app, and helpers to arrange cycles and payments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import webtest

from apiclient import ApiClient
from fakes.nowpayments import FakeNowPayments
from live_support import LiveServer, serve_live


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


@pytest.fixture
def live_server() -> Iterator[LiveServer]:
    """A bound port first, so the app's public URL (its IPN callback) can point at it."""
    yield from serve_live()
