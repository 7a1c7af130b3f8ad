"""Fixtures for templates: the generation tests' paying customers and key pool, the developer
API's key holders, and the admin's browser session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from admin_support import AdminBrowser
from developer_api.conftest import developer_factory  # noqa: F401 - shared fixture
from generation.conftest import (  # noqa: F401 - fixtures shared with the generation tests
    add_key,
    broker_url,
    customer_factory,
    start_process,
    start_worker,
    worker_settings,
)


@pytest.fixture
def alice(app: Any, customer_factory: Callable[..., Any], add_key: Callable[..., Any]) -> Any:  # noqa: F811
    add_key(app.app.registry, "demo-key-1")
    return customer_factory(app)


@pytest.fixture
def admin_user(user_factory: Callable[..., Any], make_cycle: Callable[..., Any]) -> Any:
    user = user_factory("boss@example.com", admin=True)
    # Examples are made with the admin's own units, like any generation.
    make_cycle(user)
    return user


@pytest.fixture
def admin(app: Any, admin_user: Any) -> AdminBrowser:
    return AdminBrowser(app).login(admin_user.email)
