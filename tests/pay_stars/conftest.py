"""Fixtures for the Stars tests: the fake Bot API with Stars' methods, an app selling through
the ``stars`` plugin, a plan and a pack priced in Stars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
import webtest

from conftest import registry_service
from pay_stars.fake_stars import FakeStarsTelegram


@pytest.fixture
def fake() -> Iterator[FakeStarsTelegram]:
    with FakeStarsTelegram() as server:
        yield server


@pytest.fixture
def stars_app(make_app: Callable[..., webtest.TestApp], fake: FakeStarsTelegram) -> webtest.TestApp:
    return make_app(
        nproxy__payments="stars demo",
        telegram__customer_bot_token=fake.token,
        telegram__api_base=fake.api_base,
        telegram__customer_bot_username="nproxy_shop_bot",
    )


@pytest.fixture
def registry(stars_app: webtest.TestApp) -> Any:
    return stars_app.app.registry


@pytest.fixture
def processor(registry: Any) -> Any:
    from nproxy_core.plugin_registry.interfaces import IPlugins

    return registry_service(registry, IPlugins).processor("stars")


@pytest.fixture
def plan_terms(registry: Any) -> Any:
    from nproxy_core.billing.interfaces import IPlan

    return registry_service(registry, IPlan)


@pytest.fixture
def stars_plan(db: Any, registry: Any) -> Any:
    """The monthly plan, also sold for 100 Stars."""
    from nproxy_core.billing.models import Plan

    plan = db.scalar(sa.select(Plan).where(Plan.code == "monthly"))
    plan.price_stars = 100
    db.commit()
    return plan


@pytest.fixture
def stars_pack(db: Any) -> Any:
    from nproxy_core.billing.models import CreditPack

    pack = CreditPack(
        code="stars50",
        name="Fifty",
        price=Decimal("4.99"),
        currency="USD",
        price_stars=60,
        units=50,
        valid_months=12,
        active=True,
    )
    db.add(pack)
    db.commit()
    return pack
