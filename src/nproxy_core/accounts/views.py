"""Account views: the JSON API of DESIGN section 6 and the pages a person uses."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import forget, remember
from pyramid.view import view_config

from nproxy_core.accounts import services, sessions
from nproxy_core.accounts.interfaces import ISecondFactor, ISubscriptionSummary, UserRegistered
from nproxy_core.accounts.models import User
from nproxy_core.accounts.schemas import normalize_email, required_string
from nproxy_core.accounts.security import current_session_token, user_view
from nproxy_core.accounts.tasks import send_password_reset
from nproxy_core.config import public_url
from nproxy_core.errors import APIError, NotAuthenticated, ValidationError
from nproxy_core.i18n import _, localize
from nproxy_core.jsonbody import json_object
from nproxy_core.notifications import send_email
from nproxy_core.ratelimit import client_ip


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "role": str(user.role)}


def account_summary(request: Request, user: User, *, batch: bool = False) -> dict[str, Any]:
    return request.find_service(ISubscriptionSummary).summary(request, user, batch=batch)


def _limiter(request: Request) -> Any:
    return request.find_service(name="ratelimiter")


# Throttling (DESIGN 9): an attacker must never lock the owner out from the owner's usual
# address. Every attempt counts per IP; failures count per account *and* IP, so guesses from
# elsewhere never touch the owner's own allowance; and an account-wide ceiling, much higher,
# holds only for addresses the account never logged in from.

ACCOUNT_CEILING = _(
    "Too many failed attempts on this account from new places. Log in from a device you "
    "used before, or wait and try again."
)


def _account_ip(email: str, ip: str) -> str:
    return f"account-ip:{email}|{ip}"


# --- the operations, shared by the JSON API and the pages ---------------------------------------


def do_register(request: Request, data: dict[str, Any]) -> User:
    ip = client_ip(request)
    _limiter(request).hit("register", f"ip:{ip}")
    email = normalize_email(data.get("email"))
    # Per address and IP, never per address alone: that would let anyone block a sign-up.
    _limiter(request).hit("register", _account_ip(email, ip))
    password = data.get("password")
    user = services.create_user(request.db, email, password)
    request.registry.notify(UserRegistered(request, user))
    remember(request, user.id)
    send_verification(request, user)
    return user


def _login_attempt(request: Request, email: str) -> Callable[[], None]:
    """Count a login attempt for ``email`` (password or two-factor code) or refuse it as
    throttled; returns what counts it as failed."""
    limiter, ip = _limiter(request), client_ip(request)
    familiar = sessions.is_familiar_address(request.db, email, ip)
    limiter.check("login", _account_ip(email, ip))
    if not familiar:
        limiter.check("login_account", f"account:{email}", message=ACCOUNT_CEILING)

    def failed() -> None:
        limiter.count("login", _account_ip(email, ip))
        limiter.count("login_account", f"account:{email}")

    return failed


def _second_factor(request: Request) -> ISecondFactor:
    return request.find_service(ISecondFactor)


def do_login(request: Request, data: dict[str, Any]) -> User:
    """Log in with ``email`` and ``password``, and ``otp`` when the account has two-factor
    login (DESIGN 4.7: 401 ``otp_required`` without it). A wrong code counts as a failed
    attempt, as a wrong password does."""
    _limiter(request).hit("login", f"ip:{client_ip(request)}")
    email = normalize_email(data.get("email"))
    password = required_string(data, "password", "your password")
    failed = _login_attempt(request, email)
    try:
        user = services.authenticate(request.db, email, password)
        services.check_second_factor(request.db, _second_factor(request), user, data.get("otp"))
    except services.OtpRequired as exc:
        if not exc.missing:
            failed()
        raise
    except NotAuthenticated:
        failed()
        raise
    services.record_login(user)
    remember(request, user.id)
    return user


# The login page's second step: the browser that gave the right password of an account with
# two-factor login carries this in its (signed) session until the code is given, for a few
# minutes; the password itself is never kept or sent again.
PENDING_LOGIN = "auth.pending"
PENDING_SECONDS = 300


def _start_pending_login(request: Request, user: User) -> None:
    request.session[PENDING_LOGIN] = {
        "user": user.id,
        "version": user.session_version,
        "until": int(time.time()) + PENDING_SECONDS,
    }


def pending_login(request: Request) -> User | None:
    """The account waiting for its code in this browser, if the wait is not over and nothing
    about the account changed since its password was given."""
    pending = request.session.get(PENDING_LOGIN)
    if not isinstance(pending, dict) or not isinstance(pending.get("user"), int):
        return None
    if not isinstance(pending.get("until"), int) or pending["until"] < time.time():
        return None
    user = request.db.get(User, pending["user"])
    if user is None or user.is_blocked or user.session_version != pending.get("version"):
        return None
    return user


def do_login_code(request: Request, data: dict[str, Any]) -> User:
    """The second step of the login page: the code of the account that gave its password."""
    _limiter(request).hit("login", f"ip:{client_ip(request)}")
    user = pending_login(request)
    if user is None:
        raise NotAuthenticated(
            _("Your login timed out. Enter your email and password again."),
            fields={"password": "expired"},
        )
    failed = _login_attempt(request, user.email)
    try:
        services.check_second_factor(request.db, _second_factor(request), user, data.get("otp"))
    except services.OtpRequired as exc:
        if not exc.missing:
            failed()
        raise
    services.record_login(user)
    remember(request, user.id)
    return user


def do_password_reset(request: Request, data: dict[str, Any]) -> None:
    limiter, ip = _limiter(request), client_ip(request)
    limiter.hit("password_reset", f"ip:{ip}")
    email = normalize_email(data.get("email"))
    limiter.hit("password_reset", _account_ip(email, ip))
    if not sessions.is_familiar_address(request.db, email, ip):
        # Keeps a stranger from filling the owner's inbox; the owner's usual address is free.
        limiter.hit("password_reset_account", f"account:{email}")
    # The same work whether or not the account exists: the lookup, the token and the mail
    # happen in a worker, after this request has answered.
    request.enqueue(send_password_reset, email)


def do_password_reset_confirm(request: Request, data: dict[str, Any]) -> User:
    token = data.get("token")
    if not isinstance(token, str):
        raise ValidationError(_("The reset token is missing."), fields={"token": "required"})
    user = services.finish_password_reset(request.db, token, data.get("password"))
    return user


def send_verification(request: Request, user: User) -> bool:
    """Mail ``user`` a link that verifies their address (DESIGN 4.12), from the queue once this
    request commits; False, and no mail, when the address is verified already.

    Counted per account (``nproxy.ratelimit.verify_email``), so a resend button cannot be
    made to fill an inbox. Each link replaces the ones before it.
    """
    if user.email_verified:
        return False
    _limiter(request).hit(
        "verify_email",
        f"user:{user.id}",
        message=_(
            "We have sent several verification links already. Please wait a little and "
            "check your inbox (and spam folder) for the latest one."
        ),
    )
    token = services.start_email_verification(request.db, user)
    link = public_url(request, "verify_email", _query={"token": token})
    send_email(request, user.email, "verify_email", {"link": link})
    return True


# --- JSON API ------------------------------------------------------------------------------------


@view_config(route_name="api.session", request_method="GET", renderer="json")
def api_session(request: Request) -> dict[str, Any]:
    user = request.identity
    return {
        "user": None if user is None else user_json(user),
        "csrf_token": get_csrf_token(request),
    }


@view_config(route_name="api.register", request_method="POST", renderer="json")
def api_register(request: Request) -> dict[str, Any]:
    user = do_register(request, json_object(request))
    request.response.status = 201
    return {"user": user_json(user), "csrf_token": get_csrf_token(request)}


@view_config(route_name="api.login", request_method="POST", renderer="json")
def api_login(request: Request) -> dict[str, Any]:
    user = do_login(request, json_object(request))
    return {"user": user_json(user), "csrf_token": get_csrf_token(request)}


@view_config(route_name="api.logout", request_method="POST")
def api_logout(request: Request) -> Response:
    forget(request)
    return Response(status=204)


@view_config(route_name="api.password_reset", request_method="POST", renderer="json")
def api_password_reset(request: Request) -> dict[str, Any]:
    do_password_reset(request, json_object(request))
    request.response.status = 202
    return {
        "message": localize(
            request.localizer, _("If an account exists for that email, a reset link is on its way.")
        )
    }


@view_config(route_name="api.password_reset_confirm", request_method="POST")
def api_password_reset_confirm(request: Request) -> Response:
    do_password_reset_confirm(request, json_object(request))
    return Response(status=204)


@user_view("api.verify_email", "POST", "json")
def api_verify_email(request: Request) -> dict[str, Any]:
    if not send_verification(request, request.identity):
        return {"verified": True}
    request.response.status = 202
    return {"sent": True}


@user_view("api.me", "GET", "json")
def api_me(request: Request) -> dict[str, Any]:
    user = request.identity
    # The one answer with max_batch_now: the composer offers only batch sizes that fit.
    return {
        "id": user.id,
        "email": user.email,
        "role": str(user.role),
        "email_verified": user.email_verified,
    } | account_summary(request, user, batch=True)


# --- pages ---------------------------------------------------------------------------------------


def _form_page(request: Request, template: str, action: Any, success: Any, **extra: Any) -> Any:
    """GET renders the form; POST runs ``action`` and redirects, or re-renders with the error."""
    values = dict(request.params) if request.method == "POST" else {}
    values.pop("password", None)
    values.pop("current_password", None)
    values.pop("csrf_token", None)
    values.pop("otp", None)
    context: dict[str, Any] = {"values": values, "error": None, "fields": {}, **extra}
    if request.method == "POST":
        try:
            result = action(request, dict(request.POST))
        except APIError as exc:
            request.response.status = exc.status
            for name, value in exc.headers.items():
                request.response.headers[name] = value
            context.update(error=exc.message, fields=exc.fields)
        else:
            return success(result)
    return render_to_response(template, context, request=request, response=request.response)


def safe_next(request: Request) -> str:
    """Where ``next`` asks to go after a login or a set-up; the dashboard otherwise."""
    target = request.params.get("next", "")
    # Only same-site paths, never //host or absolute URLs.
    if target.startswith("/") and not target.startswith("//"):
        return target
    return request.route_url("dashboard")


@view_config(route_name="register", request_method=("GET", "POST"))
def register_page(request: Request) -> Any:
    if request.identity is not None and request.method == "GET":
        return HTTPSeeOther(request.route_url("dashboard"))
    return _form_page(
        request,
        "accounts/register.html",
        do_register,
        # A new account has no plan yet: the plans first, not a dashboard saying "0 % left".
        lambda user: HTTPSeeOther(request.route_url("pricing")),
    )


def _next_query(request: Request) -> dict[str, str]:
    target = request.params.get("next")
    return {"next": target} if target else {}


@view_config(route_name="login", request_method=("GET", "POST"))
def login_page(request: Request) -> Any:
    if request.identity is not None and request.method == "GET":
        return HTTPSeeOther(safe_next(request))

    def log_in(request: Request, data: dict[str, Any]) -> User | None:
        try:
            return do_login(request, data)
        except services.OtpRequired as exc:
            if not exc.missing:
                raise
            _start_pending_login(request, exc.user)
            return None

    def next_step(user: User | None) -> HTTPSeeOther:
        if user is None:
            return HTTPSeeOther(request.route_url("login.otp", _query=_next_query(request)))
        return HTTPSeeOther(safe_next(request))

    return _form_page(request, "accounts/login.html", log_in, next_step)


@view_config(route_name="login.otp", request_method=("GET", "POST"))
def login_code_page(request: Request) -> Any:
    """The login page's second step, for an account with two-factor login."""
    if request.identity is not None and request.method == "GET":
        return HTTPSeeOther(safe_next(request))
    pending = pending_login(request)
    if pending is None:
        # Nothing to finish (timed out, or opened directly): the first step again.
        query = {**_next_query(request), "otp": "expired"}
        return HTTPSeeOther(request.route_url("login", _query=query))
    return _form_page(
        request,
        "accounts/login.html",
        do_login_code,
        lambda user: HTTPSeeOther(safe_next(request)),
        step="otp",
        pending_email=pending.email,
    )


@view_config(route_name="logout", request_method="POST")
def logout_page(request: Request) -> Response:
    forget(request)
    return HTTPSeeOther(request.route_url("home"))


@user_view("logout_everywhere", "POST")
def logout_everywhere_page(request: Request) -> Response:
    """End every session of the account, this one included: a lost phone, a shared computer."""
    sessions.end_sessions(request.db, request.identity.id)
    forget(request)
    return HTTPSeeOther(request.route_url("login", _query={"ended": "everywhere"}))


def do_change_password(request: Request, data: dict[str, Any]) -> User:
    user = request.identity
    current = required_string(data, "current_password", "your current password")
    services.change_password(request.db, user, current, data.get("password"))
    # Every other session ended with the change; this browser stays logged in.
    remember(request, user.id)
    return user


@user_view("account.password", ("GET", "POST"))
def change_password_page(request: Request) -> Any:
    return _form_page(
        request,
        "accounts/change_password.html",
        do_change_password,
        lambda _: HTTPSeeOther(request.route_url("dashboard", _query={"done": "password"})),
    )


@view_config(route_name="forgot_password", request_method=("GET", "POST"))
def forgot_password_page(request: Request) -> Any:
    return _form_page(
        request,
        "accounts/forgot_password.html",
        do_password_reset,
        lambda _: HTTPSeeOther(request.route_url("login", _query={"reset": "sent"})),
    )


@view_config(route_name="reset_password", request_method=("GET", "POST"))
def reset_password_page(request: Request) -> Any:
    return _form_page(
        request,
        "accounts/reset_password.html",
        do_password_reset_confirm,
        lambda _: HTTPSeeOther(request.route_url("login", _query={"reset": "done"})),
    )


@view_config(route_name="verify_email", request_method="GET")
def verify_email_page(request: Request) -> Response:
    """Open a verification link: the address it was sent to is verified, once. Any token value
    at all gets this page, never an error of the server."""
    context: dict[str, Any] = {"verified_user": None, "refused": None, "error": None}
    # Without a token at all (a bookmark, the way back from logging in) the page only offers
    # to send a link.
    if "token" in request.GET:
        try:
            context["verified_user"] = services.verify_email(request.db, request.GET["token"])
        except services.VerificationLinkRefused as exc:
            request.response.status = exc.status
            context["refused"] = exc
    return render_to_response(
        "accounts/verify_email.html", context, request=request, response=request.response
    )


@user_view("verify_email", "POST")
def send_verification_page(request: Request) -> Response:
    """The dashboard's and the refused link page's "Send verification link" button."""
    try:
        sent = send_verification(request, request.identity)
    except APIError as exc:
        request.response.status = exc.status
        for name, value in exc.headers.items():
            request.response.headers[name] = value
        return render_to_response(
            "accounts/verify_email.html",
            {"verified_user": None, "refused": None, "error": exc.message},
            request=request,
            response=request.response,
        )
    done = "verification-sent" if sent else "verified"
    return HTTPSeeOther(request.route_url("dashboard", _query={"done": done}))


@user_view("dashboard", "GET", "accounts/dashboard.html")
def dashboard_page(request: Request) -> dict[str, Any]:
    user = request.identity
    idle_limit = request.registry.settings["nproxy.session_max_age_seconds"]
    current = current_session_token(request)
    live = sessions.active_sessions(
        request.db, user.id, idle_limit=dt.timedelta(seconds=int(idle_limit))
    )
    return {
        "user": user,
        "sessions": live,
        "current_session_hash": sessions.token_hash(current) if current else None,
        "done": request.params.get("done"),
        **account_summary(request, user),
    }
