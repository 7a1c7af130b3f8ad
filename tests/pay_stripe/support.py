"""Helpers for the Stripe tests: deliver Stripe's events, check out, read the rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from apiclient import ApiClient
from fakes.stripe import sign_event
from nproxy_core.billing.models import (
    BillingCycle,
    Payment,
    PaymentNotification,
    Subscription,
)

WEBHOOK = "/billing/webhooks/stripe"


def post_event(app: Any, event: Any, secret: str, **kw: Any) -> Any:
    """Deliver one event through WebTest, signed as Stripe signs it."""
    body, headers = signed(event, secret, **kw)
    return post_signed(app, body, headers)


def signed(event: Any, secret: str, **kw: Any) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe would send with ``event`` (WebTest sets the content type)."""
    body, headers = sign_event(event, secret, **kw)
    headers.pop("Content-Type")
    return body, headers


def post_signed(app: Any, body: bytes, headers: dict[str, str]) -> Any:
    """Deliver a body as it is, with the headers given (a signature made or spoiled by the
    test), through WebTest."""
    return app.post(WEBHOOK, body, headers=headers, content_type="application/json", status="*")


def buy(api: ApiClient, email: str = "card@example.com", **body: Any) -> str:
    """Register and check out with Stripe; the order id."""
    assert api.register(email).status_int == 201
    res = api.post("/api/v1/billing/checkout", {"processor": "stripe", **body})
    assert res.status_int == 201, res.text
    return res.json["payment_id"]


def rows(db: Any, model: Any) -> list[Any]:
    db.expire_all()
    return list(db.scalars(sa.select(model).order_by(model.id)))


def cycles(db: Any) -> list[BillingCycle]:
    return rows(db, BillingCycle)


def payments(db: Any) -> list[Payment]:
    return rows(db, Payment)


def notifications(db: Any) -> list[PaymentNotification]:
    return rows(db, PaymentNotification)


def subscriptions(db: Any) -> list[Subscription]:
    return rows(db, Subscription)


def payment(db: Any, order_id: str) -> Payment:
    db.expire_all()
    return db.scalar(sa.select(Payment).where(Payment.order_id == order_id))
