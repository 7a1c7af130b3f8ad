"""The Stars plugin on its own, against the fake Bot API: its settings, the invoice it makes,
updates it reads, refunds, and errors that never carry the bot token."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from nproxy_core.config import normalize_settings
from nproxy_core.plugins import (
    PaymentProcessorError,
    PaymentStatus,
    PluginSettingError,
    WebhookRejected,
    scoped_settings,
)
from nproxy_pay_stars import StarsProcessor, event_from_update
from pay_stars.fake_stars import FakeStarsTelegram
from pay_stars.test_conformance import payment_update


@pytest.fixture
def fake():
    with FakeStarsTelegram() as server:
        yield server


@pytest.fixture
def plugin(fake):
    processor = StarsProcessor(
        {"stars.bot_token": fake.token, "stars.api_base": fake.api_base, "nproxy.secret": "s" * 64}
    )
    yield processor
    processor.close()


def test_bot_token_required_and_named():
    with pytest.raises(PluginSettingError, match=r"stars\.bot_token"):
        StarsProcessor({})
    with pytest.raises(PluginSettingError, match=r"stars\.bot_token"):
        StarsProcessor({"stars.bot_token": "no colon here"})
    with pytest.raises(PluginSettingError, match=r"stars\.api_base"):
        StarsProcessor({"stars.bot_token": "1:a", "stars.api_base": "ftp://x"})


def test_customer_bot_settings_are_granted_under_the_plugins_prefix():
    settings = normalize_settings(
        {
            "sqlalchemy.url": "sqlite://",
            "nproxy.secret": "x" * 40,
            "nproxy.public_url": "http://localhost",
            "telegram.customer_bot_token": "77:customer-token",
            "telegram.api_base": "http://127.0.0.1:9",
            "telegram.bot_token": "88:admin-token",
        },
        environ={},
    )
    scoped = scoped_settings("nproxy.payments", "stars", settings)
    assert scoped["stars.bot_token"] == "77:customer-token"
    assert scoped["stars.api_base"] == "http://127.0.0.1:9"
    assert "88:admin-token" not in json.dumps(dict(scoped))
    # Its own setting wins.
    own = normalize_settings(
        {
            "sqlalchemy.url": "sqlite://",
            "nproxy.secret": "x" * 40,
            "nproxy.public_url": "http://localhost",
            "telegram.customer_bot_token": "77:customer-token",
            "stars.bot_token": "99:stars-token",
        },
        environ={},
    )
    assert own["stars.bot_token"] == "99:stars-token"


def test_invoice_link_is_in_stars_with_our_order_as_payload(plugin, fake):
    from nproxy_core.plugins import CheckoutRequest

    hosted = plugin.create_checkout(
        CheckoutRequest(
            order_id="order-1",
            amount=Decimal(150),
            currency="XTR",
            description="nproxy Monthly plan (month)",
            callback_url="http://x/cb",
            success_url="http://x/s",
            cancel_url="http://x/c",
        )
    )
    assert hosted.checkout_url.startswith("https://t.me/$invoice")
    (invoice,) = fake.invoices
    assert invoice["method"] == "createInvoiceLink"
    assert invoice["currency"] == "XTR" and invoice["provider_token"] == ""
    assert invoice["payload"] == "order-1"
    assert invoice["prices"] == [{"label": "nproxy Monthly plan (month)", "amount": 150}]


@pytest.mark.parametrize(
    ("amount", "currency", "problem"),
    [(Decimal("9.99"), "USD", "XTR"), (Decimal("1.5"), "XTR", "whole number")],
)
def test_checkout_refuses_anything_but_whole_stars(plugin, fake, amount, currency, problem):
    from nproxy_core.plugins import CheckoutRequest

    with pytest.raises(PaymentProcessorError, match=problem):
        plugin.create_checkout(
            CheckoutRequest("o", amount, currency, "d", "http://x", "http://x", "http://x")
        )
    assert fake.invoices == []


def test_payload_longer_than_128_bytes_is_refused(plugin):
    with pytest.raises(PaymentProcessorError, match="1-128 bytes"):
        plugin.invoice("x" * 129, "t", "d", 10)


def test_refund_calls_refund_star_payment(plugin, fake):
    fake.charges["ch-1"] = 4242
    plugin.refund_payment("ch-1", "4242")
    assert fake.refunds == [{"user_id": 4242, "telegram_payment_charge_id": "ch-1"}]
    with pytest.raises(PaymentProcessorError, match="CHARGE_ALREADY_REFUNDED"):
        plugin.refund_payment("ch-1", "4242")
    with pytest.raises(PaymentProcessorError, match="Telegram user id"):
        plugin.refund_payment("ch-1", None)


def test_errors_never_carry_the_token(fake):
    processor = StarsProcessor(
        {"stars.bot_token": "5:SECRET-TOKEN", "stars.api_base": fake.api_base}
    )
    with pytest.raises(PaymentProcessorError) as refused:
        processor.refund_payment("ch", "1")  # another token: 401
    assert "SECRET-TOKEN" not in str(refused.value)
    fake.down = True
    with pytest.raises(PaymentProcessorError) as down:
        processor.refund_payment("ch", "1")
    assert "SECRET-TOKEN" not in str(down.value)
    processor.close()


def test_unreachable_api_is_a_processor_error():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    processor = StarsProcessor(
        {"stars.bot_token": "5:t", "stars.api_base": f"http://127.0.0.1:{port}"}
    )
    with pytest.raises(PaymentProcessorError, match="answerPreCheckoutQuery failed"):
        processor.answer_pre_checkout_query("q", True)
    processor.close()


def test_update_parsing():
    event = event_from_update(
        payment_update("o-1", "successful_payment", Decimal(250), "XTR", charge="c1")
    )
    assert (event.order_id, event.status, event.amount, event.currency, event.payment_id) == (
        "o-1",
        PaymentStatus.FINISHED,
        Decimal(250),
        "XTR",
        "c1",
    )
    bad = payment_update("o-1", "successful_payment", Decimal(250), "XTR")
    bad["message"]["successful_payment"]["total_amount"] = -3
    with pytest.raises(ValueError, match="total_amount"):
        event_from_update(bad)
    with pytest.raises(ValueError, match="no successful_payment"):
        event_from_update({"message": {"text": "hi"}})


def test_unsigned_or_unparseable_webhook_rejected(plugin):
    body = json.dumps(payment_update("o", "successful_payment", Decimal(5), "XTR")).encode()
    with pytest.raises(WebhookRejected, match="missing"):
        plugin.parse_webhook(body, {})
