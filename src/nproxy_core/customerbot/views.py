"""The web side of the customer bot: the account page's Telegram section (link, unlink) and
the single-use login links the bot's ``/web`` sends."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import remember
from pyramid.view import view_config

from nproxy_core.accounts.security import user_view
from nproxy_core.customerbot import services
from nproxy_core.errors import ValidationError
from nproxy_core.plugins import setting

#: The deep link just made, shown once on the account page (never in a URL).
SESSION_LINK = "telegram.link"


def bot_username(request: Request) -> str:
    return (
        setting(request.registry.settings, "telegram.customer_bot_username", default="") or ""
    ).strip()


def telegram_status(request: Request, user: Any) -> dict[str, Any]:
    """What the account page's Telegram section shows."""
    customer = services.customer_of(request.db, user.id)
    link = request.session.pop(SESSION_LINK, None)
    return {
        "available": bool(bot_username(request)),
        "linked": customer is not None,
        "username": customer.username if customer else None,
        "link": link,
        "telegram_only": user.email is None,
        "message": request.session.pop("telegram.message", None),
    }


@user_view("account.telegram.link", "POST")
def make_link(request: Request) -> Response:
    username = bot_username(request)
    if username:
        token = services.make_link_token(request.db, request.identity)
        request.session[SESSION_LINK] = f"https://t.me/{username}?start=link_{token}"
    return HTTPSeeOther(request.route_url("dashboard", _anchor="telegram"))


@user_view("account.telegram.unlink", "POST")
def unlink(request: Request) -> Response:
    try:
        done = services.unlink(request.db, request.identity)
    except ValidationError as error:
        request.session["telegram.message"] = error.message
    else:
        request.session["telegram.message"] = (
            "Telegram is unlinked from this account." if done else "No Telegram account is linked."
        )
    return HTTPSeeOther(request.route_url("dashboard", _anchor="telegram"))


@view_config(
    route_name="telegram.login", request_method="GET", renderer="accounts/telegram_login.html"
)
def login_link_page(request: Request) -> dict[str, Any]:
    """The link /web sent: a page with a button, so that a link preview fetching it (Telegram
    and other messengers do) never uses it up. Nothing is claimed here."""
    token = request.matchdict["token"]
    valid = services.login_token_valid(request.db, token)
    if not valid:
        request.response.status = 400
    return {"valid": valid, "token": token}


@view_config(route_name="telegram.login", request_method="POST")
def login_link(request: Request) -> Any:
    user = services.claim_login_token(request.db, request.matchdict["token"])
    if user is None:
        request.response.status = 400
        return render_to_response(
            "accounts/telegram_login.html",
            {"valid": False, "token": ""},
            request=request,
            response=request.response,
        )
    remember(request, user.id)
    return HTTPSeeOther(request.route_url("dashboard"))


@user_view("account.telegram.credentials", "POST")
def add_credentials(request: Request) -> Response:
    """A Telegram-only account adds an email and a password, then logs in with them too."""
    from nproxy_core.accounts.views import send_verification

    user = request.identity
    try:
        services.add_credentials(
            request.db, user, request.POST.get("email"), request.POST.get("password")
        )
    except ValidationError as error:
        request.session["telegram.credentials_error"] = error.message
        return HTTPSeeOther(request.route_url("dashboard", _anchor="account"))
    # set_password ended every session: this browser stays logged in.
    remember(request, user.id)
    send_verification(request, user)
    return HTTPSeeOther(request.route_url("dashboard", _query={"done": "verification-sent"}))
