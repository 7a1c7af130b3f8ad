"""Users: search, the user page, block, unblock, role, a granted cycle."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request

from nproxy_core.accounts import actions as accounts
from nproxy_core.accounts.models import Role
from nproxy_core.admin import queries
from nproxy_core.admin.page import (
    act,
    actor,
    admin_action,
    admin_page,
    base,
    empty_page,
    form,
    int_id,
    list_error,
    row_action,
)
from nproxy_core.billing import grants
from nproxy_core.billing.interfaces import IPlans
from nproxy_core.billing.models import Plan
from nproxy_core.db import utcnow
from nproxy_core.developer_api import keys as api_keys
from nproxy_core.errors import NotFound, ValidationError

#: The longest "expiring within" filter, in days.
MAX_EXPIRING_DAYS = 90


@admin_page("admin.users", "users.html")
def users(request: Request) -> dict[str, Any]:
    """Users by email, by the plan of their running cycle (``plan``), or whose paid access ends
    within ``expiring`` days; each with plan, paid-until and units used this cycle."""
    q = request.params.get("q", "").strip()[:254]
    plan_code = request.params.get("plan", "").strip()[:40]
    expiring = request.params.get("expiring", "").strip()[:4]
    plans = list(request.db.scalars(sa.select(Plan).order_by(Plan.id)))
    error = None
    try:
        plan = next((p for p in plans if p.code == plan_code), None)
        if plan_code and plan is None:
            raise ValidationError(
                f"plan must be one of {', '.join(p.code for p in plans)}",
                fields={"plan": "unknown"},
            )
        days = None
        if expiring:
            if not expiring.isdigit() or not 1 <= int(expiring) <= MAX_EXPIRING_DAYS:
                raise ValidationError(
                    f"expiring must be a number of days from 1 to {MAX_EXPIRING_DAYS}",
                    fields={"expiring": "invalid"},
                )
            days = int(expiring)
        page = queries.search_users(
            request.db,
            q,
            request.params.get("after"),
            plan_id=plan.id if plan is not None else None,
            expiring=dt.timedelta(days=days) if days else None,
        )
    except ValidationError as exc:
        page, error = empty_page(), list_error(request, exc)
    return base(
        request,
        "users",
        q=q,
        page=page,
        error=error,
        plans=plans,
        plan_code=plan_code,
        expiring=expiring,
        expiring_soon=EXPIRING_SOON_DAYS,
        filtered=bool(q or plan_code or expiring),
    )


#: What "expiring soon" means in the list's filter (the overview's figure).
EXPIRING_SOON_DAYS = 7


@admin_page("admin.user", "user.html")
def user(request: Request) -> dict[str, Any]:
    now = utcnow()
    detail = queries.user_detail(request.db, int_id(request, "user_id"), now)
    if detail is None:
        raise NotFound("No such user.")
    return base(request, "users", detail=detail, roles=[str(r) for r in Role])


def _user_back(request: Request) -> str:
    return request.route_path("admin.user", user_id=request.matchdict["user_id"])


user_block = row_action(
    "admin.user.block", "user_id", _user_back, accounts.block_user, lambda u: f"Blocked {u.email}."
)
user_unblock = row_action(
    "admin.user.unblock",
    "user_id",
    _user_back,
    accounts.unblock_user,
    lambda u: f"Unblocked {u.email}.",
)


@admin_action("admin.user.role")
def user_role(request: Request) -> HTTPSeeOther:
    user_id = int_id(request, "user_id")

    def change() -> str:
        user = accounts.set_role(request.db, user_id, form(request, "role"), actor=actor(request))
        return f"{user.email} is now {user.role}."

    return act(request, _user_back(request), change)


@admin_action("admin.user.grant_cycle")
def user_grant_cycle(request: Request) -> HTTPSeeOther:
    user_id = int_id(request, "user_id")

    def grant() -> str:
        cycle = grants.grant_cycle(
            request.db,
            request.find_service(IPlans).default(request.db),
            user_id,
            reason=form(request, "reason"),
            actor=actor(request),
        )
        return (
            f"Granted a free cycle from {cycle.starts_at:%Y-%m-%d %H:%M} to "
            f"{cycle.ends_at:%Y-%m-%d %H:%M} UTC ({cycle.request_limit} units)."
        )

    return act(request, _user_back(request), grant)


@admin_action("admin.user.api_key.revoke")
def user_api_key_revoke(request: Request) -> HTTPSeeOther:
    user_id, key_id = int_id(request, "user_id"), request.matchdict["key_id"]

    def revoke() -> str:
        key = api_keys.revoke_key_as_admin(request.db, user_id, key_id, actor=actor(request))
        return f"API key {key.prefix}… is revoked: calls with it now get 401."

    return act(request, _user_back(request), revoke)
