"""The two-factor pages at ``/account/2fa``: set up (QR code and secret, then a first code),
the recovery codes shown once, new recovery codes and turning it off (each needs a code)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response

from nproxy_core.accounts.security import user_view
from nproxy_core.accounts.views import safe_next
from nproxy_core.audit import Actor, Surface
from nproxy_core.errors import APIError
from nproxy_core.i18n import _
from nproxy_core.twofactor import REQUIRE_SETTING, codes
from nproxy_core.twofactor.interfaces import ITwoFactor

#: The QR code's name for screen readers.
QR_LABEL = _("QR code to scan with your authenticator app")


def _service(request: Request) -> Any:
    return request.find_service(ITwoFactor)


def _next_query(request: Request) -> dict[str, str]:
    target = request.params.get("next", "")
    return {"next": target} if target.startswith("/") and not target.startswith("//") else {}


def _page(request: Request, *, error: APIError | None = None) -> Response:
    """The two-factor page in its current state; with ``error``, the refusal said on it."""
    user = request.identity
    service = _service(request)
    status = service.status(request.db, user.id)
    enrolment = service.enrolment(request.db, user) if status.enrolling else None
    if error is not None:
        request.response.status = error.status
    qr = None
    if enrolment:
        # Drawn by segno, named in the reader's language.
        label = request.localizer.translate(QR_LABEL)
        qr = Markup(codes.qr_svg(enrolment.uri, label))  # noqa: S704
    context = {
        "user": user,
        "status": status,
        "enrolment": enrolment,
        "qr_svg": qr,
        "required": user.is_admin and request.registry.settings[REQUIRE_SETTING],
        "next_query": _next_query(request),
        "done": request.params.get("done"),
        "error": error.message if error else None,
        "fields": error.fields if error else {},
        "form": request.params.get("form") if error else None,
    }
    return render_to_response(
        "twofactor/setup.html", context, request=request, response=request.response
    )


def _codes_page(request: Request, recovery: list[str], *, fresh: bool) -> Response:
    return render_to_response(
        "twofactor/recovery_codes.html",
        {"codes": recovery, "fresh": fresh, "continue_url": safe_next(request)},
        request=request,
        response=request.response,
    )


def _actor(request: Request) -> Actor:
    return Actor.of_user(request.identity, Surface.WEB)


def _back(request: Request, **query: str) -> HTTPSeeOther:
    return HTTPSeeOther(request.route_url("account.2fa", _query={**_next_query(request), **query}))


@user_view("account.2fa", "GET")
def two_factor_page(request: Request) -> Response:
    return _page(request)


@user_view("account.2fa.setup", "POST")
def start_setup(request: Request) -> Response:
    try:
        _service(request).start(request.db, request.identity)
    except APIError as exc:
        return _page(request, error=exc)
    return _back(request)


@user_view("account.2fa.confirm", "POST")
def confirm_setup(request: Request) -> Response:
    try:
        recovery = _service(request).confirm(
            request.db, request.identity, request.POST.get("otp"), actor=_actor(request)
        )
    except APIError as exc:
        return _page(request, error=exc)
    return _codes_page(request, recovery, fresh=True)


@user_view("account.2fa.recovery", "POST")
def regenerate_codes(request: Request) -> Response:
    try:
        recovery = _service(request).regenerate(
            request.db, request.identity, request.POST.get("otp"), actor=_actor(request)
        )
    except APIError as exc:
        request.tm.doom()
        return _page(request, error=exc)
    return _codes_page(request, recovery, fresh=False)


@user_view("account.2fa.disable", "POST")
def disable(request: Request) -> Response:
    try:
        _service(request).disable(
            request.db, request.identity, request.POST.get("otp"), actor=_actor(request)
        )
    except APIError as exc:
        request.tm.doom()
        return _page(request, error=exc)
    return _back(request, done="disabled")
