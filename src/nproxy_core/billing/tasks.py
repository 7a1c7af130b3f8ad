"""Billing's periodic jobs: reconciliation with the processors, and expiry warnings."""

from __future__ import annotations

from typing import Any

from nproxy_core.billing import reconciliation, reminders
from nproxy_core.billing.interfaces import IPlan
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.tasks import task
from nproxy_core.telegram import IAlertNotifier


@task(name="billing.reconcile_payments")
def reconcile_payments(request: Any) -> dict[str, int]:
    return reconciliation.reconcile_open_payments(
        request.db,
        request.find_service(IPlan),
        request.find_service(IPlugins).payments,
        alerts=request.find_service(IAlertNotifier),
    )


@task(name="billing.send_expiry_warnings")
def send_expiry_warnings(request: Any) -> int:
    return reminders.send_expiry_warnings(request)
