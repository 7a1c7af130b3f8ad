"""Turn every OpenAI Images answer into an image or into one of the core's error classes.

OpenAI errors are ``{"error": {"message", "type", "param", "code"}}``. The router acts on the
class, so the class must say whose fault a failure is. First match wins:

``KeyRejectedError``
    401 (``invalid_api_key``, a revoked or deleted key); 403 (the key's country, region or
    organisation is not allowed, or the organisation may not use the model).
``OutOfFundsError``
    429 with code ``insufficient_quota`` (no credit left, or the monthly budget is spent);
    402; 400 with code ``billing_hard_limit_reached``.
``RetryableError``
    any other 429 (``rate_limit_exceeded``): ``rate_limit`` SHORT, ``retry_after`` from the
    ``retry-after`` header (seconds), or ``retry-after-ms``.
``ContentPolicyError``
    400 with code ``moderation_blocked`` or ``content_policy_violation`` (the prompt or an input
    image was refused by OpenAI's safety system).
``InvalidInputError``
    any other 400, 413, 415, 422.
``RetryableError``
    404, 408, 409, 5xx and any other status; a 2xx body that is not the JSON we expect, or
    whose ``b64_json`` is not base64 or not an image (a broken answer is not the prompt's fault,
    and another key may get a whole one).

Failures to get an answer at all (connect, proxy, timeouts, dropped connections) are raised as
``TransportError`` by :mod:`nproxy_core.plugins.http`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nproxy_core.plugins import (
    ContentPolicyError,
    InvalidInputError,
    KeyRejectedError,
    OutOfFundsError,
    ProviderError,
    RateLimit,
    RetryableError,
)

__all__ = ["OpenAIAnswer", "classify_error_response", "read_answer"]

#: How much of OpenAI's message is kept in ours: enough to diagnose, short enough for a log line.
MESSAGE_LIMIT = 300

_POLICY_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
_FUNDS_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_POLICY_HINT = " Try rephrasing the prompt or using a different reference image."


@dataclass(frozen=True)
class _OpenAIError:
    message: str = ""
    type: str = ""
    code: str = ""
    param: str = ""

    @classmethod
    def parse(cls, body: bytes) -> _OpenAIError:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return cls()
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            return cls()

        def text(name: str) -> str:
            value = error.get(name)
            return value if isinstance(value, str) else ""

        return cls(text("message"), text("type"), text("code"), text("param"))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after")
    if raw is not None:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass  # an HTTP date: the router's own cooldown applies
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    return None


def _describe(status: int, error: _OpenAIError, body: bytes) -> str:
    if error.message:
        detail = error.message
    else:
        # Not OpenAI's error JSON (a proxy's or load balancer's page): show its start.
        detail = body[:MESSAGE_LIMIT].decode("utf-8", "replace").strip() or "empty body"
    detail = " ".join(detail.split())[:MESSAGE_LIMIT]
    code = f" {error.code}" if error.code else ""
    return f"OpenAI answered {status}{code}: {detail}"


def classify_error_response(status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
    """The error to raise for a non-2xx answer (``headers`` looked up case-insensitively)."""
    error = _OpenAIError.parse(body)
    message = _describe(status, error, body)
    if status in (401, 403):
        return KeyRejectedError(message, http_status=status)
    if status == 402 or (status in (400, 429) and error.code in _FUNDS_CODES):
        return OutOfFundsError(message, http_status=status)
    if status == 429:
        return RetryableError(
            message,
            http_status=status,
            retry_after=_retry_after(headers),
            rate_limit=RateLimit.SHORT,
        )
    if status == 400 and error.code in _POLICY_CODES:
        detail = " ".join(error.message.split())[:MESSAGE_LIMIT]
        said = f" ({detail})" if detail else ""
        return ContentPolicyError(
            f"The request was refused by OpenAI's safety system{said}.{_POLICY_HINT}",
            http_status=status,
        )
    if status in (400, 413, 415, 422):
        return InvalidInputError(message, http_status=status)
    # 404 (model not found), 408, 409, 5xx and anything unexpected: not shown to be the user's
    # or the key's fault, so the key rests and the next one is tried.
    return RetryableError(message, http_status=status)


@dataclass(frozen=True)
class OpenAIAnswer:
    """The image bytes of a successful answer, and the usage OpenAI reported."""

    data: bytes
    usage: dict[str, Any]
    output_format: str


def read_answer(body: bytes, status: int) -> OpenAIAnswer:
    """The image in a 2xx answer ``{created, data: [{b64_json}], usage}``, or a
    :class:`RetryableError` saying what is wrong with it."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RetryableError(
            f"OpenAI answered {status} with a body that is not JSON", http_status=status
        ) from exc
    if not isinstance(payload, dict):
        raise RetryableError(
            f"OpenAI answered {status} with JSON that is not an object", http_status=status
        )
    data = payload.get("data")
    first = data[0] if isinstance(data, list) and data else None
    if not isinstance(first, dict):
        raise RetryableError(f"OpenAI answered {status} without an image", http_status=status)
    encoded = first.get("b64_json")
    if not isinstance(encoded, str) or not encoded:
        what = "a URL instead of image data" if first.get("url") else "no image data"
        raise RetryableError(f"OpenAI answered {status} with {what}", http_status=status)
    try:
        image = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RetryableError(
            f"OpenAI answered {status} with image data that is not base64", http_status=status
        ) from exc
    usage = payload.get("usage")
    output_format = payload.get("output_format")
    return OpenAIAnswer(
        data=image,
        usage=dict(usage) if isinstance(usage, dict) else {},
        output_format=output_format if isinstance(output_format, str) else "",
    )
