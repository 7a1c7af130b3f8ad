"""The gate every request passes before any view reads it (DESIGN 9): a body no larger than
``nproxy.max_body_bytes``, a path and a query that decode as UTF-8 and hold no NUL, a charset
that exists, multipart with its boundary, form fields without NUL.

Two layers, because they act at two moments:

* the *execution policy* sees the WSGI environ before Pyramid makes a request of it, and so
  before pyramid_retry copies the body to make it replayable: a body over the limit (announced
  by Content-Length, or found by reading a chunked one no further than one byte past the limit)
  is refused there, unread. There too the request's scheme and host become those of
  ``nproxy.public_url``, whatever the client sent as ``Host`` (4.11): every absolute URL the
  app makes (``route_url``, a redirect's ``Location``, which WebOb completes from the same
  environ, the CSRF origin check's idea of "this site") names the public address, never one a
  client chose;
* the *tween* sits under the exception view, so every refusal is an ordinary
  :class:`~nproxy_core.errors.APIError`, answered with the usual JSON or page and the security
  headers, before routing (which would itself trip on an undecodable path).
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from pyramid.interfaces import IExecutionPolicy
from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import default_execution_policy
from pyramid.tweens import EXCVIEW

from nproxy_core.errors import APIError, PayloadTooLarge, ValidationError, describe_size
from nproxy_core.i18n import _
from nproxy_core.plugins import positive_int, setting

#: Default of ``nproxy.max_body_bytes``: room for a 10 MB upload and its multipart framing.
DEFAULT_MAX_BODY_BYTES = 12 * 1024 * 1024
#: Where the execution policy leaves a refusal for the tween to raise.
REFUSAL = "nproxy.gate.refusal"

_READ_CHUNK = 64 * 1024
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class UnsupportedMediaType(APIError):
    status = 415
    code = "unsupported_media_type"


# --- the body, before anything reads it -------------------------------------------------------


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        _(
            "The request body is larger than ${max_bytes}; nothing was read.",
            mapping={"max_bytes": describe_size(max_bytes)},
        )
    )


def _is_chunked(environ: dict[str, Any]) -> bool:
    encoding = environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return "chunked" in encoding or bool(environ.get("wsgi.input_terminated"))


def _read_bounded(stream: Any, max_bytes: int) -> bytes | None:
    """At most ``max_bytes`` of ``stream``; None as soon as one byte more arrives."""
    buffer = bytearray()
    while True:
        chunk = stream.read(min(_READ_CHUNK, max_bytes + 1 - len(buffer)))
        if not chunk:
            return bytes(buffer)
        buffer += chunk
        if len(buffer) > max_bytes:
            return None


def check_body(environ: dict[str, Any], max_bytes: int) -> APIError | None:
    """Refuse a body over ``max_bytes`` without reading it; buffer a small chunked one.

    A chunked body (no Content-Length) is read to at most ``max_bytes + 1`` bytes and handed on
    with a Content-Length, so nothing after this reads an unbounded stream.
    """
    length = environ.get("CONTENT_LENGTH", "").strip()
    if length:
        if not length.isdigit():
            return ValidationError(_("The Content-Length header is not a number."))
        if int(length) > max_bytes:
            return _too_large(max_bytes)
        return None
    if not _is_chunked(environ):
        return None
    data = _read_bounded(environ["wsgi.input"], max_bytes)
    if data is None:
        return _too_large(max_bytes)
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ["wsgi.input_terminated"] = False
    return None


class GatedExecutionPolicy:
    """Wraps the execution policy (pyramid_retry's) with the body check."""

    def __init__(
        self,
        inner: Callable[[dict[str, Any], Any], Response],
        max_bytes: int,
        public_url: str | None = None,
    ) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        public = urlsplit(public_url) if public_url else None
        self.public_address = (public.scheme, public.netloc) if public else None

    def __call__(self, environ: dict[str, Any], router: Any) -> Response:
        if self.public_address is not None:
            # A copy: the server's environ (and what it shows its access log) stays as sent.
            scheme, host = self.public_address
            environ = {**environ, "wsgi.url_scheme": scheme, "HTTP_HOST": host}
        refusal = check_body(environ, self.max_bytes)
        if refusal is not None:
            # The body is never read: the views see an empty one, the tween raises the refusal.
            environ[REFUSAL] = refusal
            environ["wsgi.input"] = io.BytesIO()
            environ["CONTENT_LENGTH"] = "0"
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        response = self.inner(environ, router)
        if self.public_address is not None:
            _complete_location(response, environ)
        return response


def _complete_location(response: Response, environ: dict[str, Any]) -> None:
    """A relative ``Location`` made absolute on the public address: WebOb would complete it
    later from the server's environ, that is from the client's ``Host``."""
    location = response.headers.get("Location")
    if location and not urlsplit(location).scheme:
        response.headers["Location"] = urljoin(Request(environ).url, location)


# --- what the request says, before routing ----------------------------------------------------


def _has_nul(values: Any) -> bool:
    return any("\x00" in value for value in values if isinstance(value, str))


def is_text_encoding(charset: str) -> bool:
    """Whether ``bytes.decode(charset)`` works: a known codec that makes text (not zlib)."""
    try:
        info = codecs.lookup(charset)
    except (LookupError, ValueError):
        return False
    # The flag bytes.decode itself consults to refuse bytes-to-bytes codecs.
    return getattr(info, "_is_text_encoding", True)


def decoded_path(environ: dict[str, Any]) -> str:
    """PATH_INFO as text (PEP 3333 carries it as latin-1); raises UnicodeDecodeError."""
    return environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")


def check_request(request: Request) -> None:
    """Raise an APIError naming what is malformed about the request; return when it is fine."""
    refusal = request.environ.get(REFUSAL)
    if refusal is not None:
        raise refusal
    try:
        path = decoded_path(request.environ)
    except UnicodeDecodeError:
        raise ValidationError(
            _("The address holds a percent-escape that is not valid UTF-8.")
        ) from None
    if "\x00" in path:
        raise ValidationError(_("The address holds a NUL character."))
    try:
        query = request.GET
    except UnicodeDecodeError:
        raise ValidationError(
            _("The query string holds a percent-escape that is not valid UTF-8.")
        ) from None
    if _has_nul(query.keys()) or _has_nul(query.values()):
        raise ValidationError(_("The query string holds a NUL character."))

    charset = request.charset if request.content_type else None
    if charset and not is_text_encoding(charset):
        raise UnsupportedMediaType(
            _(
                "The charset '${charset}' of the Content-Type header is unknown.",
                mapping={"charset": charset[:40]},
            )
        )

    if request.content_type in _FORM_TYPES and request.method not in ("GET", "HEAD"):
        _check_form(request)


def _check_form(request: Request) -> None:
    if request.content_type == "multipart/form-data":
        boundary = _content_type_param(request, "boundary")
        if not boundary:
            raise ValidationError(_("The multipart/form-data body has no boundary parameter."))
    try:
        form = request.POST
    except Exception:
        # WebOb (through the cgi module) reports a malformed body with assorted errors.
        raise ValidationError(
            _(
                "The ${content_type} body could not be read: it is malformed.",
                mapping={"content_type": request.content_type},
            )
        ) from None
    names = list(form.keys())
    texts = [value for value in form.values() if isinstance(value, str)]
    if _has_nul(names) or _has_nul(texts):
        raise ValidationError(_("A form field holds a NUL character."))


def _content_type_param(request: Request, name: str) -> str:
    header = request.headers.get("Content-Type", "")
    for part in header.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return ""


def gate_tween_factory(handler: Callable[[Request], Response], registry: Any) -> Any:
    def gate_tween(request: Request) -> Response:
        check_request(request)
        return handler(request)

    return gate_tween


def includeme(config: Any) -> None:
    max_bytes = setting(
        config.get_settings(),
        "nproxy.max_body_bytes",
        default=DEFAULT_MAX_BODY_BYTES,
        cast=positive_int,
    )
    config.registry.settings["nproxy.max_body_bytes"] = max_bytes

    def wrap_policy() -> None:
        # After pyramid_retry has registered its policy (an action of the default order).
        inner = config.registry.queryUtility(IExecutionPolicy) or default_execution_policy
        policy = GatedExecutionPolicy(
            inner, max_bytes, public_url=config.registry.settings.get("nproxy.public_url")
        )
        config.registry.registerUtility(policy, IExecutionPolicy)

    config.action(("nproxy.gate", "execution policy"), wrap_policy, order=10)
    config.add_tween("nproxy_core.gate.gate_tween_factory", under=EXCVIEW)
