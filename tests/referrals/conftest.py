"""Fixtures for the referral tests: the app (its configuration registers the reward on
billing's activation path), and payments to activate."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
import webtest

from conftest import registry_service


@pytest.fixture
def ref_app(make_app: Callable[..., webtest.TestApp]) -> webtest.TestApp:
    return make_app(
        telegram__customer_bot_username="nproxy_shop_bot",
    )


@pytest.fixture
def plan_terms(ref_app: webtest.TestApp) -> Any:
    from nproxy_core.billing.interfaces import IPlan

    return registry_service(ref_app.app.registry, IPlan)


@pytest.fixture
def make_payment(db: Any) -> Callable[..., Any]:
    """A waiting payment of the monthly plan (or of ``pack``) for ``user``."""
    from nproxy_core.billing.checkout import new_order_id
    from nproxy_core.billing.models import Payment, PaymentState, Plan

    def factory(user: Any, *, amount: str = "9.99", pack: Any = None) -> Any:
        plan = db.scalar(sa.select(Plan).where(Plan.code == "monthly"))
        terms: dict[str, Any]
        if pack is not None:
            terms = {"pack_id": pack.id, "pack_units": pack.units, "pack_valid_months": 12}
        else:
            terms = {"plan_id": plan.id, "plan_units": plan.units, "plan_period_months": 1}
        payment = Payment(
            order_id=new_order_id(),
            user_id=user.id,
            processor="demo",
            amount=Decimal(amount),
            currency="USD",
            status=PaymentState.WAITING,
            **terms,
        )
        db.add(payment)
        db.commit()
        return payment

    return factory


def finish(db: Any, plan: Any, payment: Any, processor: str = "demo") -> Any:
    """Apply a processor's ``finished`` notification for ``payment``, as its webhook does."""
    from nproxy_core.billing import subscriptions
    from nproxy_core.billing.models import NotificationSource
    from nproxy_core.plugins import PaymentEvent, PaymentStatus

    event = PaymentEvent(
        order_id=payment.order_id,
        status=PaymentStatus.FINISHED,
        amount=payment.amount,
        currency=payment.currency,
        payment_id=f"pay-{payment.order_id}",
    )
    outcome = subscriptions.apply(db, plan, processor, event, source=NotificationSource.WEBHOOK)
    db.commit()
    return outcome
