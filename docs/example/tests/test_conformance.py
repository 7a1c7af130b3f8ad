"""The example plugins pass nproxy's conformance kit, against the local Example API."""

import json

from nproxy_example.payments import STATUSES, ExampleProcessor, sign
from nproxy_example.provider import ExampleProvider
from nproxy_example.server import ExampleAPI

from nproxy_core.plugins.testing import Case, PaymentProcessorConformance, ProviderConformance

#: The key that makes the Example API answer each outcome.
KEYS = {
    "unauthorized": "status-401",
    "forbidden": "status-403",
    "rate_limited": "status-429",
    "out_of_funds": "status-402",
    "bad_request": "status-400",
    "content_policy": "status-422",
    "server_error": "status-503",
    "timeout": "slow",
}


class TestExampleProvider(ProviderConformance):
    plugin_name = "example"

    def setup_fake(self):
        self.api = ExampleAPI().start()

    def teardown_fake(self):
        self.api.stop()

    def plugin_settings(self):
        return {"example.api_base": self.api.url}

    def make_plugin(self, settings):
        return ExampleProvider(settings)

    def arrange(self, outcome):
        if outcome == "timeout":
            return Case(api_key="slow-key", settings={"example.timeout_seconds": "0.5"})
        return Case(api_key=f"{KEYS[outcome]}-key")


WEBHOOK_SECRET = "test-webhook-secret"  # noqa: S105 - the local Example API's


class TestExampleProcessor(PaymentProcessorConformance):
    plugin_name = "example"
    statuses = STATUSES

    def setup_fake(self):
        self.api = ExampleAPI(webhook_secret=WEBHOOK_SECRET).start()

    def teardown_fake(self):
        self.api.stop()

    def plugin_settings(self):
        return {
            "example.api_base": self.api.url,
            "example.pay_key": "test-pay-key",
            "example.webhook_secret": WEBHOOK_SECRET,
        }

    def make_plugin(self, settings):
        return ExampleProcessor(settings)

    def signed_notification(self, plugin, *, order_id, status, amount, currency, invoice_id):
        body = json.dumps(
            {
                "order_id": order_id,
                "status": status,
                "amount": str(amount),
                "currency": currency,
                "checkout_id": invoice_id,
                "payment_id": "p-1",
            }
        ).encode()
        return body, {
            "Content-Type": "application/json",
            "X-Example-Signature": sign(WEBHOOK_SECRET, body),
        }

    def arrange_status(self, payment_id, status, order_id):
        self.api.payments[payment_id] = {
            "payment_id": payment_id,
            "order_id": order_id,
            "status": status,
            "amount": "9.99",
            "currency": "USD",
            "checkout_id": "chk_1",
        }
