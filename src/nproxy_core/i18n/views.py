"""The footer's language picker: a plain form, so it works without JavaScript."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from nproxy_core.i18n import COOKIE
from nproxy_core.i18n.negotiation import supported

#: A year: the choice outlives sessions.
COOKIE_MAX_AGE = 365 * 24 * 3600


def back_to(target: str | None, fallback: str) -> str:
    """``target`` when it is a path on this site (never another host: no open redirect),
    without a ``lang`` parameter, which would outrank the choice just made."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or target.startswith("//"):
        return fallback
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "lang"]
    )
    return urlunsplit(("", "", parts.path, query, parts.fragment))


@view_config(route_name="language", request_method="POST")
def choose_language(request: Request) -> HTTPSeeOther:
    """Keep the chosen language in a cookie and, for someone logged in, on the account; then
    back to the page the form was on."""
    language = supported(request.POST.get("language"))
    response = HTTPSeeOther(back_to(request.POST.get("next"), request.route_path("home")))
    if language is None:
        return response
    response.set_cookie(
        COOKIE,
        language,
        max_age=COOKIE_MAX_AGE,
        samesite="Lax",
        secure=request.scheme == "https",
        path="/",
    )
    user = request.identity
    if user is not None:
        user.language = language
    return response
