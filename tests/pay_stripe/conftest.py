"""Fixtures for the Stripe tests: the fake Stripe API, an app selling through it, and a real
HTTP server for the app (helpers in ``pay_stripe.support``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import webtest

from apiclient import ApiClient
from fakes.stripe import FakeStripe
from live_support import LiveServer, serve_live


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


@pytest.fixture
def live_server() -> Iterator[LiveServer]:
    yield from serve_live()
