"""The demo processor end to end through the pages, the JSON API, and the rule that no page or
answer shows a user exact quota counts."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa

from apiclient import ApiClient
from conftest import monthly_plan_id
from nproxy_core.billing.models import BillingCycle, Payment, PaymentNotification, PaymentState
from nproxy_core.config import ConfigurationError
from nproxy_core.db import utcnow
from nproxy_core.errors import QuotaExhausted
from nproxy_core.quota import services as quota


def start_demo_checkout(app: Any, api: ApiClient, email: str = "demo@example.com") -> Any:
    """Register, press Pay on the pricing page, follow to the demo checkout page."""
    api.register(email)
    page = app.get("/pricing")
    res = page.forms["checkout-form"].submit()
    assert res.status_int == 303
    assert re.fullmatch(r"http://localhost/billing/demo/checkout/[\w-]{24}", res.location)
    return res.follow()


def choose(checkout_page: Any, outcome: str) -> Any:
    form = checkout_page.forms["demo-outcome"]
    return form.submit("outcome", value=outcome)


def dashboard_status(app: Any) -> str:
    page = app.get("/dashboard")
    return page.html.find(id="subscription")["data-status"]


def test_demo_paid_makes_the_dashboard_active(demo_app, demo_api, db):
    checkout = start_demo_checkout(demo_app, demo_api)
    assert "Demo" in checkout.text and "9.99 USD" in checkout.text
    assert dashboard_status(demo_app) == "none"

    res = choose(checkout, "paid")
    assert res.status_int == 303 and "/success" in res.location
    page = res.follow()
    assert page.html.find(id="payment")["data-status"] == "finished"
    assert "Paid" in page.text and "active until" in page.text

    assert dashboard_status(demo_app) == "active"
    dashboard = demo_app.get("/dashboard")
    assert dashboard.html.find(id="quota")["data-bucket"] == "100"
    assert "Renew" in dashboard.text
    me = demo_api.get("/api/v1/me").json
    assert me["subscription"]["status"] == "active"
    assert me["quota"]["bucket"] == 100
    # It went through the webhook's verification and apply code and was recorded as one.
    [note] = db.scalars(sa.select(PaymentNotification)).all()
    assert (note.processor, note.source, note.result) == ("demo", "webhook", "activated")
    history = demo_app.get("/billing")
    assert "Paid" in history.text


def test_demo_partially_paid_goes_to_review_not_active(demo_app, demo_api, db):
    res = choose(start_demo_checkout(demo_app, demo_api), "partially_paid")
    page = res.follow()
    assert "Under review" in page.text
    assert page.html.find(id="payment")["data-pending"] == "false"
    payment = db.scalar(sa.select(Payment))
    assert payment.status == PaymentState.PARTIALLY_PAID and payment.needs_review
    assert db.scalar(sa.select(sa.func.count()).select_from(BillingCycle)) == 0
    assert dashboard_status(demo_app) == "none"


def test_demo_expired_changes_nothing_but_the_payment(demo_app, demo_api, db):
    res = choose(start_demo_checkout(demo_app, demo_api), "expired")
    assert "/cancel" in res.location
    page = res.follow()
    assert "Expired" in page.text and "Nothing was charged" in page.text
    payment = db.scalar(sa.select(Payment))
    assert payment.status == PaymentState.EXPIRED and not payment.needs_review
    assert db.scalar(sa.select(sa.func.count()).select_from(BillingCycle)) == 0
    assert dashboard_status(demo_app) == "none"


def test_return_page_shows_pending_until_confirmed(demo_app, demo_api, db):
    start_demo_checkout(demo_app, demo_api)
    order_id = db.scalar(sa.select(Payment.order_id))
    page = demo_app.get(f"/billing/payments/{order_id}/success")
    assert page.html.find(id="payment")["data-pending"] == "true"
    assert "Waiting for payment" in page.text
    assert 'http-equiv="refresh"' in page.text
    cancel = demo_app.get(f"/billing/payments/{order_id}/cancel")
    assert "You left the checkout" in cancel.text


def test_unknown_demo_outcome_is_refused_and_changes_nothing(demo_app, demo_api, db):
    checkout = start_demo_checkout(demo_app, demo_api)
    form = checkout.forms["demo-outcome"]
    res = demo_app.post(
        checkout.request.path,
        {"csrf_token": form["csrf_token"].value, "outcome": "stolen"},
        status="*",
    )
    assert res.status_int == 400 and "Choose one of the outcomes" in res.text
    assert db.scalar(sa.select(Payment.status)) == PaymentState.WAITING
    assert db.scalar(sa.select(sa.func.count()).select_from(PaymentNotification)) == 0


def test_someone_elses_payment_pages_are_not_found(make_app, db):
    owner_app = make_app(nproxy__payments="demo")
    checkout = start_demo_checkout(owner_app, ApiClient(owner_app), "owner@example.com")
    order_id = db.scalar(sa.select(Payment.order_id))
    other_app = make_app(nproxy__payments="demo")
    ApiClient(other_app).register("other@example.com")
    for path in (
        checkout.request.path,
        f"/billing/payments/{order_id}/success",
        f"/billing/payments/{order_id}/cancel",
    ):
        assert other_app.get(path, status="*").status_int == 404
    res = other_app.post(
        checkout.request.path,
        {"csrf_token": other_app.get("/api/v1/session").json["csrf_token"], "outcome": "paid"},
        status="*",
    )
    assert res.status_int == 404
    assert db.scalar(sa.select(sa.func.count()).select_from(BillingCycle)) == 0


def test_demo_webhook_refuses_forged_notifications(demo_app, demo_api, db):
    start_demo_checkout(demo_app, demo_api)
    order_id = db.scalar(sa.select(Payment.order_id))
    body = (
        f'{{"amount":"9.99","currency":"USD","invoice_id":"demo-{order_id}",'
        f'"order_id":"{order_id}","status":"finished"}}'
    ).encode()
    for headers in ({}, {"x-demo-signature": "00" * 32}):
        res = demo_app.post(
            "/billing/webhooks/demo",
            body,
            headers=headers,
            content_type="application/json",
            status="*",
        )
        assert res.status_int == 400 and res.json["error"]["code"] == "validation_error"
    assert db.scalar(sa.select(Payment.status)) == PaymentState.WAITING
    assert db.scalar(sa.select(sa.func.count()).select_from(PaymentNotification)) == 0


def test_production_refuses_the_demo_processor_unless_allowed(make_app):
    with pytest.raises(ConfigurationError, match="demo"):
        make_app(nproxy__env="production", nproxy__payments="demo")
    app = make_app(nproxy__env="production", nproxy__payments="demo", nproxy__allow_demo="true")
    assert app.get("/api/v1/plan").status_int == 200


# --- JSON API --------------------------------------------------------------------------------


def test_plan_api(demo_api):
    assert demo_api.get("/api/v1/plan").json == {
        "name": "Monthly",
        "price": {"amount": "9.99", "currency": "USD"},
        "period_months": 1,
    }


def test_plan_api_follows_settings(make_app):
    api = ApiClient(make_app(nproxy__plan__price="25.50", nproxy__plan__currency="eur"))
    assert api.get("/api/v1/plan").json["price"] == {"amount": "25.50", "currency": "EUR"}


def test_api_checkout_and_payments_with_the_demo(demo_api, db):
    demo_api.register("api@example.com")
    res = demo_api.post("/api/v1/billing/checkout", {"processor": "demo"})
    assert res.status_int == 201
    order_id = res.json["payment_id"]
    assert res.json["checkout_url"] == f"http://localhost/billing/demo/checkout/{order_id}"
    [payment] = demo_api.get("/api/v1/billing/payments").json["payments"]
    assert payment["id"] == order_id and payment["status"] == "waiting"
    assert payment["amount"] == "9.99" and payment["currency"] == "USD"
    assert payment["created_at"].endswith("+00:00")
    res = demo_api.post("/api/v1/billing/checkout", {"processor": "nowpayments"})
    assert res.status_int == 400 and res.json["error"]["fields"] == {"processor": "unknown"}


def test_billing_pages_need_login(demo_app):
    for path in ("/billing", "/api/v1/billing/payments"):
        res = demo_app.get(path, status="*")
        assert res.status_int in (302, 303, 401)
    assert demo_app.get("/pricing").status_int == 200


# --- no exact counts anywhere a user looks ---------------------------------------------------

LIMIT, USED, RESERVED = 7919, 4253, 1187  # remaining 2479: bucket 40


def shows(number: int, text: str) -> bool:
    return re.search(rf"(?<![\w-]){number}(?![\w-])", text) is not None


def test_no_page_or_answer_shows_exact_counts(demo_app, demo_api, db, user_factory):
    user = user_factory("counts@example.com")
    db.add(
        BillingCycle(
            user_id=user.id,
            starts_at=utcnow() - dt.timedelta(days=3),
            ends_at=utcnow() + dt.timedelta(days=20),
            period_months=1,
            plan_id=monthly_plan_id(db),
            request_limit=LIMIT,
            used=USED,
            reserved=RESERVED,
        )
    )
    db.commit()
    demo_api.login("counts@example.com")
    demo_api.post("/api/v1/billing/checkout", {"processor": "demo"})
    order_id = db.scalar(sa.select(Payment.order_id))

    texts = [
        demo_app.get(path).text
        for path in (
            "/dashboard",
            "/billing",
            "/pricing",
            f"/billing/payments/{order_id}/success",
            f"/billing/demo/checkout/{order_id}",
            "/api/v1/me",
            "/api/v1/plan",
            "/api/v1/billing/payments",
            "/api/v1/session",
        )
    ]
    assert demo_api.get("/api/v1/me").json["quota"]["bucket"] == 40
    for text in texts:
        for number in (LIMIT, USED, RESERVED, LIMIT - USED - RESERVED, USED + RESERVED):
            assert not shows(number, text), (number, text[:300])
    # The plan's own count is what a month buys, and the pricing page says it (issue 13);
    # the JSON plan still gives only name, price and period.
    assert shows(300, demo_app.get("/pricing").text)
    assert not shows(300, demo_app.get("/api/v1/plan").text)
    # Nor do the ledger's refusals.
    with pytest.raises(QuotaExhausted) as info:
        quota.reserve(db, user.id, 5000)
    # Only the batch asked for is named, never what is left.
    assert re.findall(r"\d+", info.value.message) == ["5000"]
