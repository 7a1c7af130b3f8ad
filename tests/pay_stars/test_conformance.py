"""The Telegram Stars processor passes the conformance kit, against the fake Bot API."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Any

from nproxy_core.plugins import CheckoutRequest, PaymentStatus
from nproxy_core.plugins.testing import SITE_SETTINGS, PaymentProcessorConformance
from nproxy_pay_stars import SIGNATURE_HEADER, StarsProcessor, sign_update
from pay_stars.fake_stars import FakeStarsTelegram


def payment_update(order_id: str, word: str, amount: Decimal, currency: str, **extra: Any) -> dict:
    """A bot update with ``successful_payment`` or ``refunded_payment`` (``word``)."""
    scale = 0 if currency.upper() == "XTR" else 2
    paid = {
        "currency": currency,
        "total_amount": int(amount.scaleb(scale)),
        "invoice_payload": order_id,
        "telegram_payment_charge_id": extra.pop("charge", "stxCHARGE" + secrets.token_hex(8)),
        "provider_payment_charge_id": "",
    }
    return {
        "update_id": 1000,
        "message": {
            "message_id": 7,
            "date": 1_760_000_000,
            "chat": {"id": 42, "type": "private"},
            "from": {"id": 42, "is_bot": False, "first_name": "Ada"},
            word: paid,
        },
    }


class TestStarsConformance(PaymentProcessorConformance):
    plugin_name = "stars"
    statuses = {
        "successful_payment": PaymentStatus.FINISHED,
        "refunded_payment": PaymentStatus.REFUNDED,
    }
    no_status_query = "Telegram has no query for one payment: the bot's updates tell it"

    def setup_fake(self) -> None:
        self.fake = FakeStarsTelegram().__enter__()

    def teardown_fake(self) -> None:
        self.fake.__exit__(None, None, None)

    def plugin_settings(self) -> dict[str, Any]:
        return {
            "stars.bot_token": self.fake.token,
            "stars.api_base": self.fake.api_base,
            "stars.timeout_seconds": "5",
        }

    def make_plugin(self, settings):
        return StarsProcessor(settings)

    def checkout_request(self, index: int = 0) -> CheckoutRequest:
        # Stars invoices are in XTR, whole stars.
        order_id = f"conformance-order-{index:03d}"
        base = SITE_SETTINGS["nproxy.public_url"]
        return CheckoutRequest(
            order_id=order_id,
            amount=Decimal(250),
            currency="XTR",
            description="nproxy conformance plan",
            callback_url=f"{base}/billing/webhooks/stars",
            success_url=f"{base}/billing/return/{order_id}",
            cancel_url=f"{base}/pricing",
        )

    def signed_notification(self, plugin, *, order_id, status, amount, currency, invoice_id):
        body = json.dumps(payment_update(order_id, status, amount, currency)).encode()
        signature = sign_update(plugin.settings["nproxy.secret"], body)
        return body, {"Content-Type": "application/json", SIGNATURE_HEADER: signature}

    def arrange_status(self, payment_id: str, status: str, order_id: str) -> None:
        raise AssertionError("no status query")
