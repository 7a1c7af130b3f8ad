"""Turn every Gemini answer into an image or into one of the core's error classes.

The router acts on the class, so the class must say whose fault a failure is. First match wins:

``OutOfFundsError``
    402; any error whose message says prepayment credits are depleted, a spending cap is
    exceeded or billing must be enabled; reason ``BILLING_DISABLED``; a 429 whose quota is 0
    (a free-tier key asking for a paid-only model never succeeds by waiting).
``KeyRejectedError``
    401; any 403 (leaked, suspended, ``SERVICE_DISABLED``, API blocked); reason
    ``API_KEY_INVALID`` and friends; message "API key not valid" / "API key expired".
``RetryableError``
    429 rate limit, with ``retry_after`` from ``RetryInfo.retryDelay`` ("37s") or the
    ``Retry-After`` header, and ``rate_limit`` from the ``QuotaFailure`` violations: DAILY
    when a ``quotaId`` names a per-day quota (``...PerDayPerProjectPerModel...``), which only
    Google's midnight Pacific reset lifts, else SHORT.
``TransportError``
    400 "User location is not supported" (the network path's region, see below). Failures to
    get an answer at all (connect, proxy, timeouts, dropped connections) are raised as
    ``TransportError`` by :mod:`nproxy_core.plugins.http`.
``InvalidInputError``
    any other 400 (``INVALID_ARGUMENT``, ``FAILED_PRECONDITION``), 413, 422.
``RetryableError``
    404, 408, 5xx, any other status; a 2xx body that is not the JSON we expect, or whose
    image bytes are not an image.
``ContentPolicyError``
    200 with ``promptFeedback.blockReason``, or a ``finishReason`` of SAFETY,
    PROHIBITED_CONTENT, IMAGE_SAFETY, IMAGE_PROHIBITED_CONTENT, BLOCKLIST, SPII, RECITATION or
    IMAGE_RECITATION.
``NoImageError`` (an ``InvalidInputError``)
    200 that finished (STOP, NO_IMAGE, IMAGE_OTHER, OTHER, MAX_TOKENS, ...) without an image
    part; see the class for why this is not the key's fault.

Funds are checked before key rejection and rate limits because Google sends depleted credits
as 429 ``RESOURCE_EXHAUSTED`` (like a rate limit) and disabled billing as 403 (like a revoked
key); a rate-limit message also says "check your plan and billing details", so the funds test
looks for specific phrases, never the bare word "billing".
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nproxy_core.plugins import (
    ContentPolicyError,
    InvalidInputError,
    KeyRejectedError,
    NoImageAnswer,
    OutOfFundsError,
    ProviderError,
    RateLimit,
    RetryableError,
    TransportError,
)

__all__ = [
    "Candidate",
    "NoImageError",
    "classify_error_response",
    "read_candidate",
]

#: How much of Google's message is kept in ours: enough to diagnose, short enough for a log line.
MESSAGE_LIMIT = 300


class NoImageError(NoImageAnswer):
    """Gemini finished normally but produced no image (it answered with text, or NO_IMAGE).

    This is user-caused on purpose. The key worked and was billed; the model chose not to draw
    for this prompt, so another key would most likely answer the same. As a ``RetryableError``
    it would cool down healthy keys one after another (and push them towards manual review)
    for something the prompt caused, and spend money on each. Failing the image now with
    "try rephrasing" is cheaper and tells the person what to do.
    """


# --- error responses ---------------------------------------------------------------------------

_FUNDS_PHRASES = re.compile(
    r"credits are depleted|prepayment|prepaid credit|spending cap|spend cap|"
    r"insufficient (?:funds|balance|credit)|out of credit|enable billing|billing to be enabled|"
    r"billing (?:account )?(?:is )?(?:disabled|closed|not active)",
    re.IGNORECASE,
)
_KEY_PHRASES = re.compile(
    r"api key not valid|api key expired|api key (?:was )?reported as leaked|"
    r"api_key_invalid|invalid api key",
    re.IGNORECASE,
)
_LOCATION_PHRASE = re.compile(r"location is not supported", re.IGNORECASE)
_FUNDS_REASONS = frozenset({"BILLING_DISABLED"})
_KEY_REASONS = frozenset(
    {
        "API_KEY_INVALID",
        "API_KEY_EXPIRED",
        "API_KEY_SERVICE_BLOCKED",
        "API_KEY_HTTP_REFERRER_BLOCKED",
        "API_KEY_IP_ADDRESS_BLOCKED",
        "API_KEY_ANDROID_APP_BLOCKED",
        "API_KEY_IOS_APP_BLOCKED",
        "SERVICE_DISABLED",
        "CONSUMER_SUSPENDED",
        "CONSUMER_INVALID",
        "ACCESS_TOKEN_TYPE_UNSUPPORTED",
    }
)
_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


@dataclass(frozen=True)
class _GoogleError:
    """The parts of ``{"error": {code, message, status, details}}`` the rules look at."""

    status: str = ""
    message: str = ""
    reasons: frozenset[str] = frozenset()
    retry_delay: float | None = None
    zero_quota: bool = False
    #: A violated quota is a per-day one (its ``quotaId`` contains ``PerDay``).
    daily_quota: bool = False

    @classmethod
    def parse(cls, body: bytes) -> _GoogleError:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return cls()
        # Some front ends wrap the error in a one-element list.
        if isinstance(data, list) and data:
            data = data[0]
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            return cls()
        reasons: set[str] = set()
        retry_delay: float | None = None
        zero_quota = daily_quota = False
        details = error.get("details")
        for detail in details if isinstance(details, list) else ():
            if not isinstance(detail, dict):
                continue
            if isinstance(detail.get("reason"), str):
                reasons.add(detail["reason"])
            if "retryDelay" in detail:
                retry_delay = _parse_duration(detail["retryDelay"])
            violations = detail.get("violations")
            for violation in violations if isinstance(violations, list) else ():
                if not isinstance(violation, dict):
                    continue
                if str(violation.get("quotaValue")) == "0":
                    zero_quota = True
                quota_id = violation.get("quotaId")
                if isinstance(quota_id, str) and "PerDay" in quota_id:
                    daily_quota = True
        message = error.get("message")
        message = message if isinstance(message, str) else ""
        status = error.get("status")
        return cls(
            status=status if isinstance(status, str) else "",
            message=message,
            reasons=frozenset(reasons),
            retry_delay=retry_delay,
            # A free-tier key asking for a paid-only model gets "limit: 0": it never succeeds
            # until billing is set up, so waiting out the retry delay is pointless.
            zero_quota=zero_quota or "limit: 0" in message,
            daily_quota=daily_quota,
        )


def _parse_duration(value: Any) -> float | None:
    """A protobuf Duration as JSON ("37s", "1.5s"), in seconds."""
    if isinstance(value, str):
        match = _RETRY_DELAY.match(value)
        return float(match.group(1)) if match else None
    return None


def _retry_after_header(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: rare from Google; the router's own cooldown applies


def _describe(status: int, error: _GoogleError, body: bytes) -> str:
    if error.message:
        detail = error.message
    else:
        # Not Google's error JSON (a proxy's or load balancer's page): show its start.
        detail = body[:MESSAGE_LIMIT].decode("utf-8", "replace").strip() or "empty body"
    detail = " ".join(detail.split())[:MESSAGE_LIMIT]
    label = f"{status} {error.status}".strip()
    return f"Gemini answered {label}: {detail}"


def classify_error_response(status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
    """The error to raise for a non-2xx answer (``headers`` looked up case-insensitively)."""
    error = _GoogleError.parse(body)
    message = _describe(status, error, body)

    if (
        status == 402
        or _FUNDS_PHRASES.search(error.message)
        or error.reasons & _FUNDS_REASONS
        or (status == 429 and error.zero_quota)
    ):
        return OutOfFundsError(message, http_status=status)
    if status in (401, 403) or error.reasons & _KEY_REASONS or _KEY_PHRASES.search(error.message):
        return KeyRejectedError(message, http_status=status)
    if status == 429:
        retry_after = error.retry_delay
        if retry_after is None:
            retry_after = _retry_after_header(headers)
        return RetryableError(
            message,
            http_status=status,
            retry_after=retry_after,
            rate_limit=RateLimit.DAILY if error.daily_quota else RateLimit.SHORT,
        )
    if status == 400 and _LOCATION_PHRASE.search(error.message):
        # Google refuses requests from some countries. That is the network path's fault (a
        # proxy in the wrong region, or this server's own location), not the key's or the
        # user's: as a transport error the router blames the proxy and retries directly.
        return TransportError(message, http_status=status)
    if status in (400, 413, 422):
        return InvalidInputError(message, http_status=status)
    # 404 (model not found), 408, 5xx and anything unexpected: not shown to be the user's or
    # the key's fault, so the key rests and the next one is tried.
    return RetryableError(message, http_status=status)


# --- successful responses ---------------------------------------------------------------------

_BLOCK_MESSAGES = {
    "SAFETY": "The prompt was blocked by Google's safety filters.",
    "PROHIBITED_CONTENT": "The prompt was blocked because it asks for prohibited content.",
    "BLOCKLIST": "The prompt contains terms that Google does not allow.",
    "IMAGE_SAFETY": "A reference image was blocked by Google's safety filters.",
}
_FINISH_POLICY_MESSAGES = {
    "SAFETY": "The result was withheld by Google's safety filters.",
    "IMAGE_SAFETY": "The generated image was withheld by Google's safety filters.",
    "PROHIBITED_CONTENT": "The result was withheld because it would show prohibited content.",
    "IMAGE_PROHIBITED_CONTENT": (
        "The generated image was withheld because it would show prohibited content."
    ),
    "BLOCKLIST": "The result was withheld because it contains terms Google does not allow.",
    "SPII": "The result was withheld because it could reveal sensitive personal information.",
    "RECITATION": "The result was withheld because it too closely copies existing material.",
    "IMAGE_RECITATION": (
        "The generated image was withheld because it too closely copies existing material."
    ),
}
_POLICY_HINT = " Try rephrasing the prompt or using a different reference image."


@dataclass(frozen=True)
class Candidate:
    """The final image of a successful answer."""

    data: bytes
    declared_mime: str
    finish_reason: str
    #: The ``thoughtSignature`` Gemini attached to the image part (thinking models such as
    #: Pro): it must come back with the image when the image is used again.
    thought_signature: str | None = None
    #: The model's words beside the picture (asked for with ``TEXT`` in the modalities).
    text: str | None = None


def read_candidate(payload: Any) -> Candidate:
    """The image in a 200 answer, or the error that explains why there is none."""
    if not isinstance(payload, dict):
        raise RetryableError("Gemini answered 200 with JSON that is not an object")

    feedback = payload.get("promptFeedback")
    block = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if block:
        text = _BLOCK_MESSAGES.get(str(block), f"The prompt was blocked by Google ({block}).")
        raise ContentPolicyError(text + _POLICY_HINT)

    candidates = payload.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        raise RetryableError("Gemini answered 200 without candidates or a block reason")
    candidate = candidates[0]  # one candidate per call: a batch of N is N calls
    finish = str(candidate.get("finishReason") or "")
    if finish in _FINISH_POLICY_MESSAGES:
        # Checked before looking for an image: a withheld answer is withheld even if some
        # part slipped through.
        raise ContentPolicyError(_FINISH_POLICY_MESSAGES[finish] + _POLICY_HINT)

    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    image: tuple[str, str] | None = None
    signature: str | None = None
    texts: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        # Thought parts are the model's drafts ("thinking" images and notes): never the answer.
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        inline = part.get("inlineData") or part.get("inline_data")
        if isinstance(inline, dict) and isinstance(inline.get("data"), str):
            # Several image parts can come back (a draft, then the finished picture); the last
            # one is the model's final answer, so a later part replaces an earlier one.
            mime = inline.get("mimeType") or inline.get("mime_type") or ""
            image = (inline["data"], str(mime))
            found = part.get("thoughtSignature") or part.get("thought_signature")
            signature = found if isinstance(found, str) and found else None
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])

    if image is not None:
        try:
            data = base64.b64decode(image[0], validate=True)
        except ValueError as exc:
            raise RetryableError("Gemini answered with image data that is not base64") from exc
        if not data:
            raise RetryableError("Gemini answered with an empty image part")
        words = "\n\n".join(t.strip() for t in texts if t.strip())
        return Candidate(
            data=data,
            declared_mime=image[1],
            finish_reason=finish,
            thought_signature=signature,
            text=words or None,
        )

    if not finish:
        # No image and no reason: the answer is truncated or malformed, not a decision.
        raise RetryableError("Gemini answered 200 with no image and no finish reason")
    said = " ".join(" ".join(texts).split())
    said = f' It said: "{said[:200]}"' if said else ""
    raise NoImageError(
        f"The model did not produce an image for this prompt (finish reason {finish})."
        f"{said} Try rephrasing the prompt.",
        said=" ".join(" ".join(texts).split()),
    )
