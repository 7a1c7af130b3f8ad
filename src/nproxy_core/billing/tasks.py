"""Billing's periodic jobs: reconciliation with the processors, and expiry warnings."""

from __future__ import annotations

from typing import Any

from nproxy_core.alerts import IAlertNotifier
from nproxy_core.billing import reconciliation, reminders, subscriptions
from nproxy_core.billing.interfaces import IPlan
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.tasks import task


@task(name="billing.reconcile_payments")
def reconcile_payments(request: Any) -> dict[str, int]:
    """Open checkouts, then subscriptions whose renewal is due (DESIGN 4.9, 4.16)."""
    processors = request.find_service(IPlugins).payments
    plan = request.find_service(IPlan)
    alerts = request.find_service(IAlertNotifier)
    counts = reconciliation.reconcile_open_payments(
        request.db, plan, processors, alerts=alerts, request=request
    )
    renewals = subscriptions.reconcile_subscriptions(
        request.db, plan, processors, alerts=alerts, request=request
    )
    if renewals["checked"] or renewals["failed"]:
        counts["subscriptions"] = renewals["checked"]
        counts["failed"] += renewals["failed"]
    return counts


@task(name="billing.send_expiry_warnings")
def send_expiry_warnings(request: Any) -> int:
    return reminders.send_expiry_warnings(request)
