"""The demo provider and the demo payment processor pass the conformance kit."""

from __future__ import annotations

import unittest
from decimal import Decimal
from typing import Any

from nproxy_core.demo.payments import DemoProcessor
from nproxy_core.demo.provider import DemoProvider
from nproxy_core.plugins import PaymentStatus
from nproxy_core.plugins.testing import (
    Case,
    PaymentProcessorConformance,
    ProviderConformance,
)

NO_SERVER = "the demo makes its images locally: there is no remote side to answer that"


class TestDemoProviderConformance(ProviderConformance):
    plugin_name = "demo"
    # What the demo can be made to answer: a key starting "reject" (a revoked key, 403),
    # demo.failure_rate = 1 (a 503), and a preset it lacks (a bad request).
    not_offered = {
        "unauthorized": NO_SERVER,
        "rate_limited": NO_SERVER,
        "out_of_funds": NO_SERVER,
        "content_policy": NO_SERVER,
        "timeout": NO_SERVER,
    }

    def plugin_settings(self) -> dict[str, Any]:
        return {"demo.delay_seconds": "0"}

    def make_plugin(self, settings):
        return DemoProvider(settings)

    def arrange(self, outcome: str) -> Case:
        if outcome == "forbidden":
            return Case(api_key="reject-conformance-key")
        if outcome == "server_error":
            return Case(api_key="conformance-key", settings={"demo.failure_rate": "1"})
        if outcome == "bad_request":
            request = self.request_for(0)
            bad = type(request)(mode=request.mode, prompt="x", resolution="no-such-preset")
            return Case(api_key="conformance-key", request=bad)
        raise AssertionError(f"not arranged: {outcome}")


class TestDemoProcessorConformance(PaymentProcessorConformance):
    plugin_name = "demo"
    statuses = {
        "paid": PaymentStatus.FINISHED,
        "partially_paid": PaymentStatus.PARTIALLY_PAID,
        "expired": PaymentStatus.EXPIRED,
    }
    no_status_query = "the demo keeps no payments to ask about"

    def make_plugin(self, settings):
        return DemoProcessor(settings)

    def signed_notification(self, plugin, *, order_id, status, amount, currency, invoice_id):
        return plugin.notification(
            order_id=order_id,
            outcome=status,
            amount=Decimal(amount),
            currency=currency,
            invoice_id=invoice_id,
        )


def test_the_demo_processor_has_no_status_query():
    """What the skipped status check stands for: fetch_status refuses, as the contract says."""
    from nproxy_core.plugins import PaymentProcessorError

    kit = TestDemoProcessorConformance()
    kit.setup_method()
    try:
        with unittest.TestCase().assertRaises(PaymentProcessorError):
            kit.build().fetch_status("1")
    finally:
        kit.teardown_method()
