"""The Stripe processor passes the conformance kit, against the fake Stripe API."""

from __future__ import annotations

import secrets
import time
from decimal import Decimal
from typing import Any

from fakes.stripe import FakeStripe, sign_event
from nproxy_core.plugins import PaymentStatus
from nproxy_core.plugins.testing import PaymentProcessorConformance
from nproxy_pay_stripe import StripeProcessor

#: Stripe's checkout events (a completed session paid or not yet) and what each becomes. (A
#: failed delayed payment, ``checkout.session.async_payment_failed``, leaves a session that a
#: status query cannot tell from one still waiting: tests/pay_stripe/test_plugin.py has it.)
STATUSES = {
    "checkout.session.completed": PaymentStatus.FINISHED,
    "checkout.session.completed:unpaid": PaymentStatus.WAITING,
    "checkout.session.async_payment_succeeded": PaymentStatus.FINISHED,
    "checkout.session.expired": PaymentStatus.EXPIRED,
}
#: The session a status query finds for each.
SESSION_STATE = {
    "checkout.session.completed": ("complete", "paid"),
    "checkout.session.completed:unpaid": ("complete", "unpaid"),
    "checkout.session.async_payment_succeeded": ("complete", "paid"),
    "checkout.session.expired": ("expired", "unpaid"),
}


def session(order_id: str, word: str, amount: Decimal, currency: str, **fields: Any) -> dict:
    status, paid = SESSION_STATE[word]
    return {
        "id": fields.pop("id", "cs_test_" + secrets.token_hex(12)),
        "object": "checkout.session",
        "amount_total": int(amount * 100),
        "currency": currency.lower(),
        "client_reference_id": order_id,
        "metadata": {"order_id": order_id},
        "mode": "payment",
        "payment_status": paid,
        "status": status,
        "customer": None,
        "subscription": None,
        "invoice": None,
        "payment_intent": None,
        **fields,
    }


class TestStripeConformance(PaymentProcessorConformance):
    plugin_name = "stripe"
    statuses = STATUSES

    def setup_fake(self) -> None:
        self.fake = FakeStripe().start()

    def teardown_fake(self) -> None:
        self.fake.stop()

    def plugin_settings(self) -> dict[str, Any]:
        return {
            "stripe.api_base": self.fake.api_base,
            "stripe.secret_key": self.fake.secret_key,
            "stripe.webhook_secret": self.fake.webhook_secret,
            "stripe.timeout_seconds": "5",
        }

    def make_plugin(self, settings):
        return StripeProcessor(settings)

    def signed_notification(self, plugin, *, order_id, status, amount, currency, invoice_id):
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "created": int(time.time()),
            "type": status.split(":")[0],
            "data": {"object": session(order_id, status, amount, currency)},
        }
        return sign_event(event, self.fake.webhook_secret)

    def arrange_status(self, payment_id: str, status: str, order_id: str) -> None:
        with self.fake._lock:
            self.fake.objects[payment_id] = session(
                order_id, status, Decimal("9.99"), "usd", id=payment_id
            )
