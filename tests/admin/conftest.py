"""Fixtures for the web admin: admins and users with their own browser sessions, the app with
Nano Banana pointed at the fake Gemini, and the fake NOWPayments for the review queue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import webtest

from admin_support import AdminBrowser
from fakes.gemini import FakeGemini, fake_gemini
from fakes.nowpayments import FakeNowPayments


@pytest.fixture
def browse(app: webtest.TestApp) -> Callable[..., AdminBrowser]:
    """A fresh browser session on ``app`` (default: the plain test app)."""

    def make(on: webtest.TestApp | None = None) -> AdminBrowser:
        return AdminBrowser(on or app)

    return make


@pytest.fixture
def admin_user(user_factory: Callable[..., Any]) -> Any:
    return user_factory("boss@example.com", admin=True)


@pytest.fixture
def admin(browse: Callable[..., AdminBrowser], admin_user: Any) -> AdminBrowser:
    """The admin, logged in."""
    return browse().login(admin_user.email)


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with fake_gemini() as server:
        yield server


@pytest.fixture
def pool_app(make_app: Callable[..., webtest.TestApp], gemini: FakeGemini) -> webtest.TestApp:
    """The app with the demo provider and Nano Banana (against the fake Gemini) enabled."""
    return make_app(
        nproxy__providers="demo nanobanana",
        nanobanana__api_base=gemini.base_url,
        nanobanana__timeout_seconds="10",
        nanobanana__connect_timeout_seconds="2",
    )


@pytest.fixture
def pool_admin(pool_app: webtest.TestApp, admin_user: Any) -> AdminBrowser:
    return AdminBrowser(pool_app).login(admin_user.email)


@pytest.fixture
def nowpayments() -> Iterator[FakeNowPayments]:
    with FakeNowPayments() as server:
        yield server


@pytest.fixture
def pay_app(make_app: Callable[..., webtest.TestApp], nowpayments: FakeNowPayments) -> Any:
    """The app with NOWPayments (against the fake) and the demo processor enabled."""
    return make_app(
        nproxy__payments="nowpayments demo",
        nowpayments__api_base=nowpayments.api_base,
        nowpayments__api_key=nowpayments.api_key,
        nowpayments__ipn_secret=nowpayments.ipn_secret,
        nowpayments__timeout_seconds="5",
    )


@pytest.fixture
def pay_admin(pay_app: webtest.TestApp, admin_user: Any) -> AdminBrowser:
    return AdminBrowser(pay_app).login(admin_user.email)
