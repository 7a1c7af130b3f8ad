"""Sessions, identity, permissions and CSRF, as one Pyramid security policy.

The session cookie carries the user id and the user's ``session_version``; bumping the version
(password reset) logs every other session out.
"""

from __future__ import annotations

from typing import Any

from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.events import NewResponse
from pyramid.request import Request
from pyramid.security import Allowed, Denied
from pyramid.session import JSONSerializer, SignedCookieSessionFactory

from nproxy_core import logs
from nproxy_core.accounts.models import Role, User


class Permission:
    """Every permission nproxy checks, named in one place."""

    AUTHENTICATED = "authenticated"
    ADMIN = "admin"


SESSION_USER = "auth.user_id"
SESSION_VERSION = "auth.version"
_IDENTITY = "_nproxy_identity"


class SessionSecurityPolicy:
    def identity(self, request: Request) -> User | None:
        # Asked several times per request (permission, views, pyramid_tm's annotation): load the
        # user once. remember() and forget() drop the cached answer.
        if _IDENTITY not in request.__dict__:
            request.__dict__[_IDENTITY] = self._load_identity(request)
        return request.__dict__[_IDENTITY]

    def _load_identity(self, request: Request) -> User | None:
        user_id = request.session.get(SESSION_USER)
        if user_id is None:
            return None
        user = request.db.get(User, user_id)
        if (
            user is None
            or user.is_blocked
            or user.session_version != request.session.get(SESSION_VERSION)
        ):
            return None
        logs.bind(user_id=user.id)
        return user

    def authenticated_userid(self, request: Request) -> int | None:
        user = request.identity
        return None if user is None else user.id

    def permits(self, request: Request, context: Any, permission: str) -> Allowed | Denied:
        user = request.identity
        if user is None:
            return Denied("not authenticated")
        if permission == Permission.AUTHENTICATED:
            return Allowed("authenticated")
        if permission == Permission.ADMIN and user.role == Role.ADMIN:
            return Allowed("admin")
        return Denied(f"needs {permission}")

    def remember(self, request: Request, userid: int, **kw: Any) -> list[tuple[str, str]]:
        user = request.db.get(User, userid)
        # A fresh session on login prevents session fixation.
        request.session.invalidate()
        request.session[SESSION_USER] = userid
        request.session[SESSION_VERSION] = user.session_version
        request.session.new_csrf_token()
        request.__dict__.pop(_IDENTITY, None)
        return []

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        request.session.invalidate()
        request.__dict__.pop(_IDENTITY, None)
        return []


#: Sent with every answer: no sniffing, no framing (clickjacking), no full URLs to other sites.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def add_security_headers(event: NewResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        event.response.headers.setdefault(name, value)


def includeme(config: Any) -> None:
    config.add_subscriber(add_security_headers, NewResponse)
    settings = config.get_settings()
    secure = settings["nproxy.public_url"].startswith("https://")
    factory = SignedCookieSessionFactory(
        settings["nproxy.secret"],
        cookie_name="nproxy_session",
        salt="nproxy.session",
        httponly=True,
        samesite="Lax",
        secure=secure,
        max_age=int(settings["nproxy.session_max_age_seconds"]),
        timeout=int(settings["nproxy.session_max_age_seconds"]),
        reissue_time=3600,
        serializer=JSONSerializer(),
    )
    config.set_session_factory(factory)
    config.set_security_policy(SessionSecurityPolicy())
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    # CSRF on every unsafe request; JSON sends X-CSRF-Token, forms send csrf_token.
    config.set_default_csrf_options(
        require_csrf=True,
        token="csrf_token",  # noqa: S106 - a form field's name, not a secret
        header="X-CSRF-Token",
    )
