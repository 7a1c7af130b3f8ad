"""The web side of the customer bot: the account page's Telegram section (link, unlink) and
the single-use login links the bot's ``/web`` sends."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
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


@view_config(route_name="telegram.login", request_method="GET", renderer="string")
def login_link(request: Request) -> Any:
    user = services.claim_login_token(request.db, request.matchdict["token"])
    if user is None:
        request.response.status = 400
        request.response.content_type = "text/plain"
        return (
            "This login link does not work: it is unknown, used or older than 15 minutes. "
            "Send /web to the bot for a new one."
        )
    remember(request, user.id)
    return HTTPSeeOther(request.route_url("dashboard"))
