"""The Stripe plugin on its own, against the fake Stripe API: settings, webhook signatures as
Stripe signs them, every event shape it reads, and its errors (which never carry a secret)."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from fakes._server import Reply
from fakes.stripe import FakeStripe, sign_event, signature_header
from nproxy_core.plugins import (
    CheckoutRequest,
    EventKind,
    PaymentProcessorError,
    PaymentStatus,
    PluginSettingError,
    WebhookRejected,
)
from nproxy_pay_stripe import StripeProcessor

SECRET = "whsec_test_plugin_Zq8"


@pytest.fixture
def fake():
    with FakeStripe(webhook_secret=SECRET) as server:
        yield server


def make(fake: FakeStripe, **overrides: Any) -> StripeProcessor:
    settings = {
        "stripe.api_base": fake.api_base,
        "stripe.secret_key": fake.secret_key,
        "stripe.webhook_secret": SECRET,
        "stripe.timeout_seconds": "2",
        **overrides,
    }
    return StripeProcessor({k: v for k, v in settings.items() if v is not None})


def event(kind: str, obj: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    return {
        "id": "evt_1",
        "object": "event",
        "created": created or int(time.time()),
        "type": kind,
        "data": {"object": obj},
    }


def parse(plugin: StripeProcessor, payload: Any, **sign: Any) -> Any:
    body, headers = sign_event(payload, SECRET, **sign)
    return plugin.parse_webhook(body, headers)


def request(order: str = "order-1", *, recurring: bool = True) -> CheckoutRequest:
    return CheckoutRequest(
        order_id=order,
        amount=Decimal("9.99"),
        currency="USD",
        description="nproxy Monthly plan (month)",
        callback_url="https://shop.test/billing/webhooks/stripe",
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/cancel",
        recurring=recurring,
        period_months=12 if recurring == "yearly" else 1,
    )


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"stripe.secret_key": None}, "stripe.secret_key"),
        ({"stripe.secret_key": "pk_live_publishable"}, "stripe.secret_key"),
        ({"stripe.webhook_secret": ""}, "stripe.webhook_secret"),
        ({"stripe.api_base": "ftp://api.stripe.com"}, "stripe.api_base"),
        ({"stripe.timeout_seconds": "-1"}, "stripe.timeout_seconds"),
    ],
)
def test_a_missing_or_malformed_setting_is_named(fake, overrides, named):
    with pytest.raises(PluginSettingError) as caught:
        make(fake, **overrides)
    assert named in str(caught.value)
    assert "sk_test" not in str(caught.value)


# --- checkout --------------------------------------------------------------------------------


def test_a_yearly_plan_is_a_yearly_price_and_a_checkout_is_idempotent_by_order(fake):
    plugin = make(fake)
    first = plugin.create_checkout(CheckoutRequest(**{**request().__dict__, "period_months": 12}))
    again = plugin.create_checkout(CheckoutRequest(**{**request().__dict__, "period_months": 12}))
    assert first == again and len(fake.sessions) == 1
    sent = fake.requests[0]
    assert sent.headers["idempotency-key"] == "nproxy-checkout-order-1"
    assert sent.form()["line_items"][0]["price_data"]["recurring"] == {
        "interval": "year",
        "interval_count": "1",
    }


@pytest.mark.parametrize(
    ("amount", "currency"), [(Decimal("9.999"), "USD"), (Decimal("0"), "USD"), (Decimal("5"), "US")]
)
def test_an_amount_stripe_cannot_charge_is_refused_before_calling(fake, amount, currency):
    plugin = make(fake)
    with pytest.raises(PaymentProcessorError):
        plugin.create_checkout(
            CheckoutRequest(**{**request().__dict__, "amount": amount, "currency": currency})
        )
    assert fake.requests == []


def test_stripe_errors_name_the_problem_without_the_key(fake):
    plugin = make(fake, **{"stripe.secret_key": "sk_test_wrong_key_123456"})
    with pytest.raises(PaymentProcessorError) as caught:
        plugin.create_checkout(request())
    assert "HTTP 401" in str(caught.value) and "api_key_invalid" in str(caught.value)
    assert "sk_test_wrong_key_123456" not in str(caught.value)
    good = make(fake)
    fake.fail_next(
        Reply(
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "parameter_invalid",
                    "message": "Invalid currency: usd.",
                    "param": "currency",
                }
            },
        )
    )
    with pytest.raises(PaymentProcessorError) as caught:
        good.create_checkout(request())
    assert "parameter_invalid" in str(caught.value) and "Invalid currency" in str(caught.value)


def test_an_unreachable_or_silent_stripe_is_a_processor_error(fake, unused_port):
    plugin = make(fake, **{"stripe.api_base": f"http://127.0.0.1:{unused_port}"})
    with pytest.raises(PaymentProcessorError) as caught:
        plugin.fetch_status("cs_test_1")
    assert "ConnectError" in str(caught.value)
    slow = make(fake, **{"stripe.timeout_seconds": "0.3"})
    fake.fail_next(Reply(200, {}, delay=3))
    fake.fail_next(Reply(200, {}, delay=3))
    with pytest.raises(PaymentProcessorError):
        slow.fetch_status("cs_test_1")


def test_an_answer_without_a_url_is_refused(fake):
    plugin = make(fake)
    fake.fail_next(Reply(200, {"id": "cs_test_1", "object": "checkout.session", "url": None}))
    with pytest.raises(PaymentProcessorError, match="no url"):
        plugin.create_checkout(request())


# --- signatures ------------------------------------------------------------------------------


SESSION = {
    "id": "cs_test_sig",
    "object": "checkout.session",
    "amount_total": 999,
    "currency": "usd",
    "client_reference_id": "order-1",
    "metadata": {"order_id": "order-1"},
    "mode": "payment",
    "payment_status": "paid",
    "status": "complete",
    "payment_intent": "pi_1",
}


def test_a_signed_event_is_read(fake):
    parsed = parse(make(fake), event("checkout.session.completed", SESSION))
    assert (parsed.order_id, parsed.status, parsed.amount, parsed.currency) == (
        "order-1",
        PaymentStatus.FINISHED,
        Decimal("9.99"),
        "USD",
    )
    assert parsed.invoice_id == parsed.payment_id == "cs_test_sig"
    assert parsed.references == ("pi_1",) and parsed.event_id == "evt_1"


def test_one_matching_v1_among_several_is_enough(fake):
    plugin = make(fake)
    parsed = parse(plugin, event("checkout.session.completed", SESSION), extra_v1=["00" * 32] * 3)
    assert parsed.status == PaymentStatus.FINISHED


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "blank",
        "expired",
        "no-t",
        "no-v1",
        "wrong-secret",
        "other-body",
        "garbage",
        "not-json",
        "not-an-event",
    ],
)
def test_bad_signatures_and_bodies_are_rejected(fake, case):
    plugin = make(fake)
    body = json.dumps(event("checkout.session.completed", SESSION)).encode()
    header = signature_header(body, SECRET)
    if case == "missing":
        headers: dict[str, str] = {}
    elif case == "blank":
        headers = {"Stripe-Signature": " "}
    elif case == "expired":
        headers = {
            "Stripe-Signature": signature_header(body, SECRET, timestamp=int(time.time()) - 301)
        }
    elif case == "no-t":
        headers = {"Stripe-Signature": header.split(",", 1)[1]}
    elif case == "no-v1":
        headers = {"Stripe-Signature": header.split(",v1=")[0]}
    elif case == "wrong-secret":
        headers = {"Stripe-Signature": signature_header(body, "whsec_other")}
    elif case == "other-body":
        headers = {"Stripe-Signature": header}
        body = body.replace(b"999", b"1")
    elif case == "garbage":
        headers = {"Stripe-Signature": "t=abc,v1=\u00e9\u00e9"}
    elif case == "not-json":
        body = b"\xff\xfe not json"
        headers = {"stripe-signature": signature_header(body, SECRET)}
    else:
        body = json.dumps({"id": "evt_1", "type": "x"}).encode()
        headers = {"stripe-signature": signature_header(body, SECRET)}
    with pytest.raises(WebhookRejected) as caught:
        plugin.parse_webhook(body, headers)
    assert SECRET not in str(caught.value)


# --- event shapes ----------------------------------------------------------------------------


def test_a_failed_delayed_payment_and_an_expired_session(fake):
    plugin = make(fake)
    failed = parse(plugin, event("checkout.session.async_payment_failed", SESSION))
    assert failed.status == PaymentStatus.FAILED
    expired = parse(plugin, event("checkout.session.expired", {**SESSION, "status": "expired"}))
    assert expired.status == PaymentStatus.EXPIRED


def test_disagreeing_order_references_are_rejected(fake):
    with pytest.raises(WebhookRejected, match="disagree"):
        parse(
            make(fake),
            event("checkout.session.completed", {**SESSION, "metadata": {"order_id": "x"}}),
        )


def test_an_invoice_of_a_newer_api_version_is_read(fake):
    """Since 2025 an invoice names its subscription under parent.subscription_details and its
    payment intent under payments; a subscription keeps its period end on its items."""
    period_end = int(time.time()) + 30 * 86400
    invoice = {
        "id": "in_new",
        "object": "invoice",
        "amount_due": 999,
        "amount_paid": 999,
        "billing_reason": "subscription_cycle",
        "currency": "usd",
        "customer": "cus_1",
        "hosted_invoice_url": "https://invoice.stripe.com/i/x",
        "lines": {"data": [{"period": {"start": 1, "end": period_end}}]},
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": "sub_new", "metadata": {"order_id": "o-9"}},
        },
        "payments": {"data": [{"payment": {"type": "payment_intent", "payment_intent": "pi_9"}}]},
        "status": "paid",
    }
    parsed = parse(make(fake), event("invoice.paid", invoice))
    assert parsed.kind == EventKind.RENEWAL and parsed.renewal_id == "in_new"
    assert parsed.subscription.subscription_id == "sub_new"
    assert parsed.subscription.order_id == "o-9"
    assert parsed.subscription.current_period_end == dt.datetime.fromtimestamp(period_end, dt.UTC)
    assert parsed.references == ("pi_9",) and parsed.amount == Decimal("9.99")
    subscription = {
        "id": "sub_new",
        "object": "subscription",
        "status": "active",
        "cancel_at_period_end": True,
        "customer": "cus_1",
        "items": {"data": [{"current_period_end": period_end}]},
        "metadata": {"order_id": "o-9"},
    }
    parsed = parse(make(fake), event("customer.subscription.updated", subscription, created=5))
    info = parsed.subscription
    assert parsed.kind == EventKind.SUBSCRIPTION
    assert (info.renews, info.ended, info.order_id) == (False, False, "o-9")
    assert info.as_of == dt.datetime.fromtimestamp(5, dt.UTC)
    ended = parse(
        make(fake), event("customer.subscription.deleted", {**subscription, "status": "canceled"})
    )
    assert ended.subscription.ended and ended.status == PaymentStatus.EXPIRED


def test_a_partial_refund_keeps_the_payment_paid_with_the_amount_left(fake):
    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount": 999,
        "amount_refunded": 500,
        "currency": "usd",
        "customer": "cus_1",
        "invoice": "in_1",
        "payment_intent": "pi_1",
        "refunded": False,
        "metadata": {},
    }
    parsed = parse(make(fake), event("charge.refunded", charge))
    assert parsed.kind == EventKind.REFUND and parsed.status == PaymentStatus.FINISHED
    assert parsed.amount == Decimal("4.99") and parsed.renewal_id == "in_1"
    whole = parse(
        make(fake), event("charge.refunded", {**charge, "amount_refunded": 999, "refunded": True})
    )
    assert whole.status == PaymentStatus.REFUNDED and whole.amount == Decimal("9.99")
    assert whole.references == ("in_1", "pi_1", "ch_1", "cus_1")


def test_event_types_it_does_not_use_are_other(fake):
    parsed = parse(
        make(fake), event("payment_intent.created", {"id": "pi_1", "object": "payment_intent"})
    )
    assert parsed.kind == EventKind.OTHER


def test_cancel_portal_and_subscription_status_through_the_api(fake):
    plugin = make(fake)
    hosted = plugin.create_checkout(request())
    fake.complete_checkout(hosted.invoice_id)
    sub_id = fake.get(hosted.invoice_id)["subscription"]
    info = plugin.cancel_renewal(sub_id)
    assert info.renews is False and info.subscription_id == sub_id
    customer = fake.get(sub_id)["customer"]
    assert plugin.manage_url(customer, "https://shop.test/dashboard").startswith(
        "https://billing.stripe.com/"
    )
    state, latest = plugin.fetch_subscription(sub_id)
    assert state.kind == EventKind.SUBSCRIPTION and state.subscription.renews is False
    assert latest.renewal_id == fake.get(sub_id)["latest_invoice"]
    with pytest.raises(PaymentProcessorError, match="resource_missing"):
        plugin.cancel_renewal("sub_unknown")
    with pytest.raises(PaymentProcessorError):
        plugin.fetch_status("cs/../v1/customers")


def test_a_subscription_not_paid_yet_neither_renews_nor_ends(fake):
    subscription = {"id": "sub_1", "object": "subscription", "status": "incomplete"}
    info = parse(make(fake), event("customer.subscription.created", subscription)).subscription
    assert info.renews is None and not info.ended
