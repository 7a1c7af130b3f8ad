"""Users: search, the user page, block, unblock, role, a granted cycle."""

from __future__ import annotations

from typing import Any

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
from nproxy_core.db import utcnow
from nproxy_core.developer_api import keys as api_keys
from nproxy_core.errors import NotFound, ValidationError


@admin_page("admin.users", "users.html")
def users(request: Request) -> dict[str, Any]:
    q = request.params.get("q", "").strip()[:254]
    error = None
    try:
        page = queries.search_users(request.db, q, request.params.get("after"))
    except ValidationError as exc:
        page, error = empty_page(), list_error(request, exc)
    return base(request, "users", q=q, page=page, error=error)


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
