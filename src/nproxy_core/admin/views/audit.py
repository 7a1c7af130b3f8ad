"""The audit log, filtered by actor, action, subject and time."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from nproxy_core.admin import queries
from nproxy_core.admin.page import (
    act,
    actor,
    admin_page,
    base,
    empty_page,
    list_error,
)
from nproxy_core.errors import ValidationError

#: Audit actions the filter suggests (any action can be typed).
KNOWN_ACTIONS = (
    "user.create",
    "user.block",
    "user.unblock",
    "user.role",
    "user.grant_cycle",
    "api_key.revoke",
    "payment.resolve",
    "payment.review_reopened",
    "payment_notification.dismiss",
    "billing.payment_refunded",
    "billing.cycle_ended_by_refund",
    "key.add",
    "key.edit",
    "key.restore",
    "key.disable",
    "key.test",
    "proxy.add",
    "proxy.enable",
    "proxy.disable",
    "proxy.test",
    "telegram.pair",
    "telegram.revoke",
    "plan.add",
    "plan.edit",
    "billing.plan_upgraded",
    "billing.free_grant",
    "pack.add",
    "pack.edit",
    "pack.grant",
    "billing.pack_revoked_by_refund",
    "pricing.unit_price_set",
    "pricing.unit_price_cleared",
)


@admin_page("admin.audit", "audit.html")
def audit(request: Request) -> dict[str, Any]:
    params = request.params
    filters = {
        "actor": params.get("actor", "").strip()[:320],
        "action": params.get("action", "").strip()[:64],
        "target": params.get("target", "").strip()[:130],
    }
    error = None
    try:
        page = queries.list_audit(request.db, **filters, cursor=params.get("after"))
    except ValidationError as exc:
        page, error = empty_page(), list_error(request, exc)
    return base(request, "audit", filters=filters, page=page, actions=KNOWN_ACTIONS, error=error)


__all__ = ["act", "actor"]
