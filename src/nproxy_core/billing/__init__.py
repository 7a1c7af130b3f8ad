"""Billing: the plan, billing cycles, payments through processor plugins, and their pages."""

from __future__ import annotations

from typing import Any

from nproxy_core.billing.interfaces import IPlan
from nproxy_core.billing.plan import Plan
from nproxy_core.billing.tasks import reconcile_payments, send_expiry_warnings
from nproxy_core.tasks import TASKS


def includeme(config: Any) -> None:
    config.register_service(Plan.from_settings(config.get_settings()), IPlan)

    config.add_route("pricing", "/pricing")
    config.add_route("billing.history", "/billing")
    config.add_route("billing.checkout", "/billing/checkout")
    config.add_route("billing.success", "/billing/payments/{order_id}/success")
    config.add_route("billing.cancel", "/billing/payments/{order_id}/cancel")
    config.add_route("billing.webhook", "/billing/webhooks/{processor}")
    config.add_route("api.plan", "/api/v1/plan")
    config.add_route("api.billing.checkout", "/api/v1/billing/checkout")
    config.add_route("api.billing.payments", "/api/v1/billing/payments")
    config.scan("nproxy_core.billing.views")

    config.scan("nproxy_core.billing.tasks", categories=TASKS)
    config.add_periodic_task("billing.reconcile_payments", reconcile_payments, 300)
    config.add_periodic_task("billing.send_expiry_warnings", send_expiry_warnings, 900)
