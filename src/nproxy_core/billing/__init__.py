"""Billing: the plans, credit packs, billing cycles, payments through processor plugins, and
their pages."""

from __future__ import annotations

from typing import Any

from nproxy_core.billing.interfaces import IPacks, IPlan, IPlans
from nproxy_core.billing.packs import PackCatalog
from nproxy_core.billing.plan import Plan
from nproxy_core.billing.plans import PlanCatalog, reconcile_default_plan
from nproxy_core.billing.tasks import reconcile_payments, send_expiry_warnings
from nproxy_core.billing.views import current_subscription
from nproxy_core.tasks import TASKS


def includeme(config: Any) -> None:
    terms = Plan.from_settings(config.get_settings())
    config.register_service(terms, IPlan)
    config.register_service(PlanCatalog(terms.code), IPlans)
    config.register_service(PackCatalog(), IPacks)
    # Once every service is registered: the settings' terms reach the default plan's row.
    config.action(None, lambda: reconcile_default_plan(config.registry, terms), order=10)

    config.add_route("pricing", "/pricing")
    config.add_route("billing.history", "/billing")
    config.add_route("billing.checkout", "/billing/checkout")
    config.add_route("billing.start_free", "/billing/start-free")
    config.add_route("billing.success", "/billing/payments/{order_id}/success")
    config.add_route("billing.cancel", "/billing/payments/{order_id}/cancel")
    config.add_route("billing.webhook", "/billing/webhooks/{processor}")
    config.add_route("api.plan", "/api/v1/plan")
    config.add_route("api.plans", "/api/v1/plans")
    config.add_route("api.packs", "/api/v1/packs")
    config.add_route("api.billing.checkout", "/api/v1/billing/checkout")
    config.add_route("api.billing.payments", "/api/v1/billing/payments")
    config.add_route("api.billing.start_free", "/api/v1/billing/start-free")
    # Subscriptions that renew by themselves (DESIGN 4.16): the account page's actions.
    config.add_route("billing.subscription.cancel", "/billing/subscription/cancel")
    config.add_route("billing.subscription.manage", "/billing/subscription/manage")
    config.add_route("api.billing.subscription", "/api/v1/billing/subscription")
    config.add_route("api.billing.subscription.cancel", "/api/v1/billing/subscription/cancel")
    config.add_route("api.billing.subscription.portal", "/api/v1/billing/subscription/portal")
    config.add_request_method(current_subscription, "subscription", reify=True)
    config.scan("nproxy_core.billing.views")

    config.scan("nproxy_core.billing.tasks", categories=TASKS)
    config.add_periodic_task("billing.reconcile_payments", reconcile_payments, 300)
    config.add_periodic_task("billing.send_expiry_warnings", send_expiry_warnings, 900)
