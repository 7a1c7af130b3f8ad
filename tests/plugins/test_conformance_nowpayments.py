"""The NOWPayments processor passes the conformance kit, against the fake NOWPayments API."""

from __future__ import annotations

from typing import Any

from fakes.nowpayments import FakeNowPayments, RawNumber, ipn_payload, sign_ipn
from nproxy_core.plugins import PaymentStatus
from nproxy_core.plugins.testing import PaymentProcessorConformance
from nproxy_pay_crypto import NowPaymentsProcessor


class TestNowPaymentsConformance(PaymentProcessorConformance):
    plugin_name = "nowpayments"
    statuses = {status.value: status for status in PaymentStatus}

    def setup_fake(self) -> None:
        self.fake = FakeNowPayments().start()

    def teardown_fake(self) -> None:
        self.fake.stop()

    def plugin_settings(self) -> dict[str, Any]:
        return {
            "nowpayments.api_base": self.fake.api_base,
            "nowpayments.api_key": self.fake.api_key,
            "nowpayments.ipn_secret": self.fake.ipn_secret,
        }

    def make_plugin(self, settings):
        return NowPaymentsProcessor(settings)

    def signed_notification(self, plugin, *, order_id, status, amount, currency, invoice_id):
        payload = ipn_payload(
            payment_status=status,
            order_id=order_id,
            price_amount=RawNumber(amount),
            price_currency=currency.lower(),
            invoice_id=invoice_id,
        )
        return sign_ipn(payload, self.fake.ipn_secret)

    def arrange_status(self, payment_id: str, status: str, order_id: str) -> None:
        self.fake.set_payment(payment_id, payment_status=status, order_id=order_id)
