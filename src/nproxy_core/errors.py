"""Errors as values users can read: one domain exception per failure, mapped once to a JSON
answer (``{"error": {"code", "message"}}``) for the API or an HTML page for people."""

from __future__ import annotations

import logging
from typing import Any

import pyramid_retry
from pyramid.csrf import BadCSRFToken
from pyramid.exceptions import URLDecodeError
from pyramid.httpexceptions import HTTPException, HTTPForbidden, HTTPNotFound
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config
from sqlalchemy import exc as sa_exc

from nproxy_core.i18n import _, localizable, localize

log = logging.getLogger(__name__)


class APIError(Exception):
    """Base of every error a user may see. ``message`` is safe to show.

    A subclass names its HTTP status and error code in its header:
    ``class NotFound(APIError, status=404, code="not_found")``.
    """

    status = 400
    code = "validation_error"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None) -> None:
        super().__init_subclass__()
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, fields: dict[str, str] | None = None) -> None:
        # A marked message (``_("...")``) is shown in the request's language (DESIGN 4.15).
        message = localizable(message)
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.headers: dict[str, str] = {}


class ValidationError(APIError, status=400, code="validation_error"):
    pass


class NotAuthenticated(APIError, status=401, code="not_authenticated"):
    pass


class Forbidden(APIError, status=403, code="forbidden"):
    pass


class NotFound(APIError, status=404, code="not_found"):
    pass


class Conflict(APIError, status=409, code="conflict"):
    pass


class RateLimited(APIError, status=429, code="rate_limited"):
    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(max(1, retry_after))


class PayloadTooLarge(APIError, status=413, code="payload_too_large"):
    pass


class IdempotencyMismatch(APIError, status=422, code="idempotency_mismatch"):
    """An ``Idempotency-Key`` reused for a different request than the one it first named."""


class NoActiveSubscription(APIError, status=402, code="no_active_subscription"):
    pass


class QuotaExhausted(APIError, status=402, code="quota_exhausted"):
    pass


class PlanExcludesModel(APIError, status=403, code="plan_excludes_model"):
    """The user's plan does not include the model asked for, and no pack of theirs covers it."""


def describe_size(n: int) -> str:
    """``10485760`` → ``"10 MB"``: limits in the words a person uses."""
    mb, kb = 1024 * 1024, 1024
    if n >= mb and n % mb == 0:
        return f"{n // mb} MB"
    if n >= kb and n % kb == 0:
        return f"{n // kb} KB"
    return f"{n} bytes"


def request_path(request: Request) -> str:
    """The request's path as text, even when it is not valid UTF-8 (error views and logs must
    never fail on the very input they report)."""
    raw = request.environ.get("PATH_INFO", "")
    return raw.encode("latin-1", "replace").decode("utf-8", "replace")


def wants_json(request: Request) -> bool:
    if request_path(request).startswith(
        ("/api/", "/v1/", "/billing/webhooks/", "/healthz", "/metrics")
    ):
        return True
    offers = request.accept.acceptable_offers(["text/html", "application/json"])
    return bool(offers) and offers[0][0] == "application/json"


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    message = localize(request.localizer, message)
    if wants_json(request):
        body: dict[str, Any] = {"code": code, "message": message}
        if fields:
            body["fields"] = fields
        response = Response(json_body={"error": body}, status=status)
    else:
        response = render_to_response(
            "errors/error.html",
            {"status": status, "code": code, "message": message},
            request=request,
        )
        response.status = status
    if headers:
        response.headers.update(headers)
    return response


@exception_view_config(APIError)
def api_error(exc: APIError, request: Request) -> Response:
    return error_response(
        request, exc.status, exc.code, exc.message, fields=exc.fields, headers=exc.headers
    )


@exception_view_config(BadCSRFToken)
def bad_csrf(exc: BadCSRFToken, request: Request) -> Response:
    return error_response(
        request,
        403,
        "forbidden",
        _("Missing or invalid CSRF token. Reload the page and try again."),
    )


@exception_view_config(URLDecodeError)
def undecodable_url(exc: URLDecodeError, request: Request) -> Response:
    return error_response(
        request, 400, "validation_error", _("The address is not valid UTF-8 once decoded.")
    )


@notfound_view_config()
def not_found(exc: HTTPNotFound, request: Request) -> Response:
    return error_response(request, 404, "not_found", _("Not found."))


@forbidden_view_config()
def forbidden(exc: HTTPForbidden, request: Request) -> Response:
    if request.identity is None:
        if not wants_json(request):
            from pyramid.httpexceptions import HTTPSeeOther

            # The gate has checked that the path decodes before any view could be refused.
            return HTTPSeeOther(request.route_url("login", _query={"next": request.path_qs}))
        return error_response(request, 401, "not_authenticated", _("Log in first."))
    return error_response(request, 403, "forbidden", _("You are not allowed to do that."))


@exception_view_config(HTTPException)
def http_exception(exc: HTTPException, request: Request) -> Response:
    if exc.code < 400:
        return exc
    code = {400: "validation_error", 405: "method_not_allowed"}.get(exc.code, "error")
    return error_response(request, exc.code, code, exc.title)


@exception_view_config(sa_exc.TimeoutError)
def database_busy(exc: sa_exc.TimeoutError, request: Request) -> Response:
    # Every pooled connection stayed busy for the pool's whole timeout: an overload, not a bug.
    log.warning("no database connection free for %s %s", request.method, request_path(request))
    return error_response(
        request,
        503,
        "busy",
        _("The service is very busy right now. Please try again in a few seconds."),
        headers={"Retry-After": "5"},
    )


@exception_view_config(Exception)
def internal_error(exc: Exception, request: Request) -> Response:
    if pyramid_retry.is_error_retryable(request, exc):
        # pyramid_retry discards this answer and runs the request again.
        log.info("retrying %s %s after %r", request.method, request_path(request), exc)
    else:
        # Never a stack trace to the user; the log has it.
        log.exception("unhandled error on %s %s", request.method, request_path(request))
    return error_response(
        request,
        500,
        "internal_error",
        _("Something went wrong on our side. Please try again in a moment."),
    )


def includeme(config: Any) -> None:
    config.scan(__name__)
