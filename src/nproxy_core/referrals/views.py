"""The web side of referrals: ``GET /r/{code}`` (remember the code in a cookie, go to
registration), recording the referrer when that registration makes the account, and the
account page's links."""

from __future__ import annotations

import logging
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from nproxy_core.accounts.interfaces import UserRegistered
from nproxy_core.plugins import setting
from nproxy_core.referrals.services import (
    ReferralRefused,
    code_for,
    links,
    normalize_code,
    record_referral,
    referrer_of_code,
    reward_units,
)

log = logging.getLogger(__name__)

COOKIE = "nproxy_ref"
COOKIE_MAX_AGE = 30 * 24 * 3600


@view_config(route_name="referral.link", request_method="GET")
def referral_link(request: Request) -> HTTPSeeOther:
    """Remember a known code for 30 days and send the visitor to registration (someone
    logged in already has an account: to the account page, with nothing remembered)."""
    if request.identity is not None:
        return HTTPSeeOther(request.route_url("dashboard"))
    response = HTTPSeeOther(request.route_url("register"))
    code = normalize_code(request.matchdict.get("code"))
    if code is not None and referrer_of_code(request.db, code) is not None:
        response.set_cookie(
            COOKIE,
            code,
            max_age=COOKIE_MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=request.scheme == "https",
            path="/",
        )
    return response


def registered(event: UserRegistered) -> None:
    """A registration with a referral cookie records its referrer (a refused code changes
    nothing: the account is made all the same); the cookie is dropped either way."""
    request = event.request
    code = request.cookies.get(COOKIE)
    if not code:
        return
    try:
        record_referral(request.db, event.user.id, code, via="web")
    except ReferralRefused as exc:
        log.info("referral cookie not recorded for user %s: %s", event.user.id, exc)
    request.add_response_callback(lambda _req, response: response.delete_cookie(COOKIE, path="/"))


def referral_links(request: Request) -> dict[str, Any] | None:
    """The logged-in user's code and links, for the account page (None when logged out)."""
    user = request.identity
    if user is None:
        return None
    settings = request.registry.settings
    found = links(
        code_for(request.db, user.id),
        public_url=settings["nproxy.public_url"],
        bot_username=setting(settings, "telegram.customer_bot_username", default="") or "",
    )
    return {**found, "reward_units": reward_units(settings)}
