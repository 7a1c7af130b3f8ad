"""Sessions, identity, permissions and CSRF, as one Pyramid security policy.

The signed session cookie carries the user id, the user's ``session_version`` and the token of
a server-side session row (:mod:`nproxy_core.accounts.sessions`). Logging out ends that row, so
a copied cookie stops working at once; ending every row of a user (log out everywhere, a
password change or reset) ends every browser's session; bumping the version does the same in
one UPDATE for any feature that needs it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.events import NewResponse
from pyramid.request import Request
from pyramid.security import Allowed, Denied
from pyramid.session import BaseCookieSessionFactory, JSONSerializer
from pyramid.view import view_config
from webob.cookies import SignedSerializer

from nproxy_core import logs
from nproxy_core.accounts import sessions
from nproxy_core.accounts.models import Role, User
from nproxy_core.config import server_secrets
from nproxy_core.db import is_read_only
from nproxy_core.ratelimit import client_ip
from nproxy_core.storage import IStorage


class Permission:
    """Every permission nproxy checks, named in one place."""

    AUTHENTICATED = "authenticated"
    ADMIN = "admin"


def user_view(
    route_name: str, method: str | tuple[str, ...], renderer: str | None = None
) -> Callable[[Any], Any]:
    """A page or JSON API view for logged-in users only (others are sent to log in, or get a
    401 from the API)."""
    settings: dict[str, Any] = {"renderer": renderer} if renderer is not None else {}
    return view_config(
        route_name=route_name,
        request_method=method,
        permission=Permission.AUTHENTICATED,
        **settings,
    )


SESSION_USER = "auth.user_id"
SESSION_VERSION = "auth.version"
SESSION_TOKEN = "auth.token"  # noqa: S105 - a session key name, not a secret
_IDENTITY = "_nproxy_identity"
_CHECKED = "_nproxy_session_check"


class SessionSecurityPolicy:
    """The session check is one Core select (:func:`sessions.check_session`), done once per
    request; the ORM user is made from its row only when a view asks for ``request.identity``
    (the chat's poll never does). A route's context may name a statement extending the check
    (``session_check``: statement and parameters), so the route learns what it needs about its
    resource in the same round trip (the poll: whether the generation is the user's)."""

    def __init__(self, idle_limit: dt.timedelta) -> None:
        self.idle_limit = idle_limit

    def checked(self, request: Request, context: Any = None) -> Any:
        """The request's session check: a row of :data:`sessions.SESSION_CHECK` (or of the
        context's extension of it), or None when no one is logged in."""
        # Asked several times per request (permission, views, logs): checked once.
        # remember() and forget() drop the cached answer.
        if _CHECKED not in request.__dict__:
            request.__dict__[_CHECKED] = self._check(request, context)
        return request.__dict__[_CHECKED]

    def _check(self, request: Request, context: Any) -> Any:
        user_id = request.session.get(SESSION_USER)
        token = request.session.get(SESSION_TOKEN)
        if user_id is None or not isinstance(token, str):
            return None
        read_only = is_read_only(request)
        # A read-only route (the poll) reads only the columns that decide; the others read
        # the whole user, from which request.identity is made without a query.
        check = sessions.QUICK_SESSION_CHECK if read_only else sessions.SESSION_CHECK
        statement, params = getattr(context, "session_check", None) or (check, None)
        found = sessions.check_session(
            request.db,
            token,
            idle_limit=self.idle_limit,
            # A read-only route cannot write: its requests never mark the session seen.
            touch=not read_only,
            statement=statement,
            params=params,
        )
        if found is None or found.id != user_id:
            return None
        if found.is_blocked or found.session_version != request.session.get(SESSION_VERSION):
            return None
        logs.bind(user_id=found.id)
        return found

    def identity(self, request: Request) -> User | None:
        if _IDENTITY not in request.__dict__:
            found = self.checked(request)
            request.__dict__[_IDENTITY] = (
                None if found is None else sessions.user_of(request.db, found)
            )
        return request.__dict__[_IDENTITY]

    def authenticated_userid(self, request: Request) -> int | None:
        found = self.checked(request)
        return None if found is None else found.id

    def permits(self, request: Request, context: Any, permission: str) -> Allowed | Denied:
        found = self.checked(request, context)
        if found is None:
            return Denied("not authenticated")
        if permission == Permission.AUTHENTICATED:
            return Allowed("authenticated")
        if permission == Permission.ADMIN and found.role == Role.ADMIN:
            return Allowed("admin")
        return Denied(f"needs {permission}")

    def remember(self, request: Request, userid: int, **kw: Any) -> list[tuple[str, str]]:
        user = request.db.get(User, userid)
        # A fresh session on login prevents session fixation.
        self._end(request)
        request.session.invalidate()
        request.session[SESSION_USER] = userid
        request.session[SESSION_VERSION] = user.session_version
        request.session[SESSION_TOKEN] = sessions.start_session(
            request.db,
            user,
            ip=client_ip(request),
            user_agent=request.user_agent or "",
        )
        request.session.new_csrf_token()
        request.__dict__.pop(_IDENTITY, None)
        request.__dict__.pop(_CHECKED, None)
        return []

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        self._end(request)
        request.session.invalidate()
        request.__dict__.pop(_IDENTITY, None)
        request.__dict__.pop(_CHECKED, None)
        return []

    def _end(self, request: Request) -> None:
        # Ended on the server: the cookie, wherever a copy of it is, no longer logs anyone in.
        token = request.session.get(SESSION_TOKEN)
        if isinstance(token, str):
            sessions.end_session(request.db, token)


def checked_session(request: Request) -> Any:
    """The request's session check (:meth:`SessionSecurityPolicy.checked`): its row, with the
    columns the route's context added to it, or None when no one is logged in."""
    if request.authenticated_userid is None:
        return None
    return request.__dict__.get(_CHECKED)


def current_session_token(request: Request) -> str | None:
    token = request.session.get(SESSION_TOKEN)
    return token if isinstance(token, str) else None


#: Sent with every answer: no sniffing, no framing (clickjacking), no full URLs to other sites.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def content_security_policy(media_origin: str | None) -> str:
    """A strict policy: scripts, styles, fonts and requests only from this site, no inline
    script or style anywhere, nothing may frame the pages.

    Images may also be ``data:`` and ``blob:`` (the chat previews an upload before sending it)
    and come from the object store when ``/media/...`` redirects there. Forms post to this site,
    which may redirect a checkout to a payment processor's page (``https:``).
    """
    images = " ".join(filter(None, ["'self'", "data:", "blob:", media_origin]))
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self' https:",
        ]
    )


class ResponseHeaders:
    """Adds the security headers, the CSP and, unless a view chose its own caching (static
    files, media), ``Cache-Control: no-store``: every page carries the session's CSRF token and
    every API answer is someone's data, so no cache may keep them."""

    def __init__(self) -> None:
        self._csp: str | None = None

    def __call__(self, event: NewResponse) -> None:
        headers = event.response.headers
        for name, value in SECURITY_HEADERS.items():
            headers.setdefault(name, value)
        if self._csp is None:
            storage = event.request.find_service(IStorage)
            self._csp = content_security_policy(getattr(storage, "media_origin", None))
        headers.setdefault("Content-Security-Policy", self._csp)
        if "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"


class RotatingSignedSerializer:
    """The session cookie's signature across a change of ``nproxy.secret`` (4.11): signed
    with the current secret, accepted when signed with it or any of ``nproxy.secret_previous``,
    so sessions signed before a rotation stay valid until they expire (and are re-signed with
    the current secret when the cookie is next reissued). Signs as Pyramid's
    ``SignedCookieSessionFactory`` does (webob's SignedSerializer, SHA-512, JSON), so cookies
    made before this class existed still load."""

    def __init__(self, secrets: Sequence[str], *, salt: str) -> None:
        self._signers = [SignedSerializer(s, salt, "sha512", JSONSerializer()) for s in secrets]

    def dumps(self, appstruct: Any) -> bytes:
        return self._signers[0].dumps(appstruct)

    def loads(self, bstruct: bytes) -> Any:
        for signer in self._signers:
            try:
                return signer.loads(bstruct)
            except ValueError:
                continue
        raise ValueError("Invalid signature")


def includeme(config: Any) -> None:
    config.add_subscriber(ResponseHeaders(), NewResponse)
    settings = config.get_settings()
    secure = settings["nproxy.public_url"].startswith("https://")
    factory = BaseCookieSessionFactory(
        RotatingSignedSerializer(server_secrets(settings), salt="nproxy.session"),
        cookie_name="nproxy_session",
        httponly=True,
        samesite="Lax",
        secure=secure,
        max_age=int(settings["nproxy.session_max_age_seconds"]),
        timeout=int(settings["nproxy.session_max_age_seconds"]),
        reissue_time=3600,
    )
    config.set_session_factory(factory)
    config.set_security_policy(
        SessionSecurityPolicy(
            idle_limit=dt.timedelta(seconds=int(settings["nproxy.session_max_age_seconds"]))
        )
    )
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    # CSRF on every unsafe request; JSON sends X-CSRF-Token, forms send csrf_token.
    config.set_default_csrf_options(
        require_csrf=True,
        token="csrf_token",  # noqa: S106 - a form field's name, not a secret
        header="X-CSRF-Token",
    )
