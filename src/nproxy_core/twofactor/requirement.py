"""``nproxy.admin.require_2fa``: an admin without two-factor login reaches no admin page or
action until they have set it up.

A view deriver, so the rule holds for every view that needs the admin permission, whichever
module declares it (the web admin's sections, a feature's own admin page): a page asked for
by a browser answers 303 to ``/account/2fa`` (and back afterwards); an action or a JSON
request is refused with 403 ``2fa_required``. Anonymous visitors and non-admins never get this
far (the permission check comes first), and nothing changes for anyone else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request

from nproxy_core.accounts.interfaces import ISecondFactor
from nproxy_core.accounts.models import User
from nproxy_core.accounts.security import Permission
from nproxy_core.errors import APIError, wants_json
from nproxy_core.twofactor import REQUIRE_SETTING
from nproxy_core.twofactor.interfaces import ITwoFactor


class SecondFactorRequired(APIError, status=403, code="2fa_required"):
    pass


REQUIRED_MESSAGE = "Admins must use two-factor login. Set it up at /account/2fa, then try again."


def admin_second_factor(view: Callable[..., Any], info: Any) -> Callable[..., Any]:
    if info.options.get("permission") != Permission.ADMIN or not info.settings.get(REQUIRE_SETTING):
        return view

    def gated(context: Any, request: Request) -> Any:
        user = request.identity
        if (
            user is not None
            and user.is_admin
            and not request.find_service(ISecondFactor).is_enabled(request.db, user.id)
        ):
            if request.method in ("GET", "HEAD") and not wants_json(request):
                return HTTPSeeOther(
                    request.route_url("account.2fa", _query={"next": request.path_qs})
                )
            raise SecondFactorRequired(REQUIRED_MESSAGE)
        return view(context, request)

    return gated


def two_factor_status(request: Request, user: User) -> Any:
    """``request.two_factor_status(user)``: for pages that show it (the account page, the
    admin's user page) without their views knowing about two-factor login."""
    return request.find_service(ITwoFactor).status(request.db, user.id)
