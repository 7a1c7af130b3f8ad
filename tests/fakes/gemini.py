"""A fake Gemini ``generateContent`` server: a real HTTP server on 127.0.0.1 for tests.

It speaks the wire format of ``POST /v1beta/models/{model}:generateContent`` (and of
``GET /v1beta/models/{model}``, the free key check) closely enough for the Nano Banana
provider, and each API key (header ``x-goog-api-key``) chooses how it behaves:
success, rate limits, depleted credits, rejected keys, safety blocks, slow answers, dropped
connections and more. Only the standard library is used, so anything may import it.

Usage::

    from fakes.gemini import FakeGemini

    with FakeGemini() as fake:  # or: with fake_gemini() as fake  (wrap it as a fixture)
        settings = fake.settings()  # {"nanobanana.api_base": fake.base_url}
        fake.behave("k1", "rate_limited", retry_delay="5s")  # explicit choice for one key
        ...  # key "unavailable-2" answers 503 by its prefix; unknown keys succeed
        fake.requests[-1].json["generationConfig"]

Choosing a behaviour for a key, first match wins:

1. ``fake.behave(key, name_or_callable, **options)``;
2. the key's prefix before the first ``-``, if it names a behaviour (``"slow-1"`` → ``slow``);
3. the server's ``default`` (``"success"`` unless given).

Requests are checked before the behaviour runs, the way Google does: unknown paths get 404, a
missing key 403, and a malformed body, an unknown ``aspectRatio`` or ``imageSize`` on a
non-Pro model (no ``-pro-`` in its name) get 400 ``INVALID_ARGUMENT``. So a provider bug shows
up as a 400 instead of passing silently.

Every request is recorded (``fake.requests``, ``fake.requests_for(key)``, ``fake.clear()``) as a
``RecordedRequest`` with ``path``, lower-cased ``headers``, raw ``body``, parsed ``json``,
``api_key``, ``model``, the ``behaviour`` that answered, and helpers ``parts``,
``aspect_ratio``, ``image_size``.

Behaviours (``BEHAVIOURS``; options in brackets):

==========================  ======================================================================
``success``                 200, one PNG sized like Gemini's output for the aspect ratio
                            (``image``, ``mime``: bytes and declared type to send instead;
                            ``text``: a text part before the image; ``delay``: seconds first)
``thoughts``                a thought text part and a ``"thought": true`` 8x8 image, then the
                            real image
``multiple_images``         two non-thought images: 4x4 first, then the real one
``wrong_mime``              declares ``image/png`` and sends 16x8 JPEG bytes
``text_only``               STOP with a text part and no image
``no_image``                finishReason ``NO_IMAGE``, no parts
``finish_reason``           any finishReason, no image (``reason``, default ``IMAGE_OTHER``)
``image_safety``            finishReason ``IMAGE_SAFETY``
``safety``                  finishReason ``SAFETY``
``prohibited_content``      finishReason ``PROHIBITED_CONTENT``
``prompt_blocked``          ``promptFeedback.blockReason`` (``reason``, default ``SAFETY``)
``server_error``            500 INTERNAL
``bad_gateway``             502 with an HTML page, as a load balancer sends it
``unavailable``             503 UNAVAILABLE "The model is overloaded"
``gateway_timeout``         504 DEADLINE_EXCEEDED
``rate_limited``            429 RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo
                            (``retry_delay``, default ``"37s"``; ``None`` leaves RetryInfo out;
                            ``quota_id``, default the per-minute
                            ``GenerateRequestsPerMinutePerProjectPerModel``)
``daily_quota``             the same 429 for the per-day quota
                            ``GenerateRequestsPerDayPerProjectPerModel-FreeTier``
``free_tier_zero``          429 whose quota violation has ``quotaValue`` "0" ("limit: 0")
``depleted``                402 RESOURCE_EXHAUSTED "prepayment credits are depleted"
``prepayment_depleted``     429 RESOURCE_EXHAUSTED "Your prepayment credits are depleted…"
``spending_cap``            429 RESOURCE_EXHAUSTED "…exceeded its monthly spending cap…"
``invalid_key``             400 INVALID_ARGUMENT "API key not valid", reason API_KEY_INVALID
``expired_key``             400 INVALID_ARGUMENT "API key expired", reason API_KEY_INVALID
``unauthenticated``         401 UNAUTHENTICATED
``leaked_key``              403 PERMISSION_DENIED "reported as leaked"
``service_disabled``        403 PERMISSION_DENIED, reason SERVICE_DISABLED
``bad_argument``            400 INVALID_ARGUMENT about the aspect ratio (user input)
``payload_too_large``       413 "Request payload size exceeds the limit"
``location_unsupported``    400 FAILED_PRECONDITION "User location is not supported…"
``model_not_found``         404 NOT_FOUND
``slow``                    waits ``delay`` seconds (default 2), then succeeds
``drop``                    reads the request, then closes the socket without answering
``malformed_json``          200 with a truncated JSON body
==========================  ======================================================================

A behaviour is any callable ``(RecordedRequest, **options) -> Reply``; pass one to ``behave``
for one-off answers. ``stop()`` wakes sleeping handlers, so shutdown never waits for ``slow``.

``GET /v1beta/models/{model}`` (the key check) runs the key's behaviour too: an error answer
(a rejected key, a rate limit, depleted credits, a 5xx, a dropped connection) is sent as it is,
and any 200 becomes the model's description (``model_description``), as Google answers a key it
accepts. Without a key it answers 403, as Google does.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fakes._server import Behaviour, FakeServer, Reply

__all__ = [
    "ASPECT_SIZES",
    "BEHAVIOURS",
    "FakeGemini",
    "JPEG_16x8",
    "RecordedRequest",
    "Reply",
    "fake_gemini",
    "make_png",
    "model_description",
]

# --- images ------------------------------------------------------------------------------------

#: Gemini 2.5 Flash Image output sizes by aspect ratio (1K); Pro's 2K and 4K are 2x and 4x.
ASPECT_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
_SIZE_SCALE = {"1K": 1, "2K": 2, "4K": 4}

#: A real 16x8 baseline JPEG (made once with Pillow), for "declared PNG, sent JPEG".
JPEG_16x8 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERX"
    "RTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIABADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDHooorhPqD/9k="
)


@functools.lru_cache(maxsize=64)
def make_png(width: int, height: int, rgb: tuple[int, int, int] = (90, 140, 200)) -> bytes:
    """A valid single-colour RGB PNG; compresses to a few KB even at 4096x4096."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    compressor = zlib.compressobj(9)
    # Row by row, so a 4K image never needs its 50 MB of raw pixels in memory at once.
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


# --- requests and replies ----------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request the fake received (recorded before its behaviour runs)."""

    method: str
    path: str
    #: Header names in lower case.
    headers: dict[str, str]
    body: bytes
    #: The parsed body, or None if it was not JSON.
    json: Any
    api_key: str | None
    model: str | None
    behaviour: str = ""
    received_at: float = field(default_factory=time.time)

    @property
    def image_config(self) -> dict[str, Any]:
        config = self.json.get("generationConfig") if isinstance(self.json, dict) else None
        image_config = config.get("imageConfig") if isinstance(config, dict) else None
        return image_config if isinstance(image_config, dict) else {}

    @property
    def aspect_ratio(self) -> str:
        return self.image_config.get("aspectRatio") or "1:1"

    @property
    def image_size(self) -> str:
        return self.image_config.get("imageSize") or "1K"

    @property
    def parts(self) -> list[dict[str, Any]]:
        """The parts of the last turn: the request itself (earlier turns are history)."""
        try:
            return self.json["contents"][-1]["parts"]
        except (KeyError, IndexError, TypeError):
            return []

    @property
    def history(self) -> list[dict[str, Any]]:
        """The turns before the last one (earlier prompts and the model's own images)."""
        try:
            return list(self.json["contents"][:-1])
        except (KeyError, TypeError):
            return []


def _error(code: int, status: str, message: str, *details: dict[str, Any]) -> Reply:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return Reply(code, {"error": error})


def _error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


def _usage(request: RecordedRequest, *, thoughts: int = 0) -> dict[str, Any]:
    images_in = sum(1 for part in request.parts if "inlineData" in part)
    prompt_tokens = 12 + 258 * images_in  # Gemini counts a reference image as 258 tokens
    if "-pro-" in (request.model or ""):
        output_tokens = 2000 if request.image_size == "4K" else 1120
    else:
        output_tokens = 1290
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": output_tokens}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _answer(
    request: RecordedRequest,
    parts: list[dict[str, Any]],
    *,
    finish: str | None = "STOP",
    thoughts: int = 0,
) -> Reply:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return Reply(
        200,
        {
            "candidates": [candidate],
            "usageMetadata": _usage(request, thoughts=thoughts),
            "modelVersion": request.model,
            "responseId": f"fake-{id(request):x}",
        },
    )


def _image_part(data: bytes, mime: str = "image/png") -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode("ascii")}}


def thought_signature(data: bytes) -> str:
    """The signature this fake gives a Pro image: tied to its bytes, so it can check one that
    comes back without remembering it (Gemini's are opaque; what matters is that they return)."""
    return "fake-signature-" + hashlib.sha256(data).hexdigest()[:24]


def _requested_png(request: RecordedRequest) -> bytes:
    width, height = ASPECT_SIZES.get(request.aspect_ratio, (1024, 1024))
    scale = _SIZE_SCALE.get(request.image_size, 1)
    return make_png(width * scale, height * scale)


def success(
    request: RecordedRequest,
    *,
    image: bytes | None = None,
    mime: str = "image/png",
    text: str | None = None,
    delay: float = 0.0,
) -> Reply:
    parts = [{"text": text}] if text else []
    data = image if image is not None else _requested_png(request)
    part = _image_part(data, mime)
    if "-pro-" in (request.model or ""):
        # Thinking models sign their images; the signature must come back with the image.
        part["thoughtSignature"] = thought_signature(data)
    parts.append(part)
    reply = _answer(request, parts)
    reply.delay = delay
    return reply


def thoughts(request: RecordedRequest) -> Reply:
    parts = [
        {"text": "Planning the composition…", "thought": True},
        {**_image_part(make_png(8, 8, (255, 0, 0))), "thought": True},
        _image_part(_requested_png(request)),
    ]
    return _answer(request, parts, thoughts=412)


def multiple_images(request: RecordedRequest) -> Reply:
    return _answer(
        request, [_image_part(make_png(4, 4, (0, 255, 0))), _image_part(_requested_png(request))]
    )


def finish_reason(request: RecordedRequest, *, reason: str = "IMAGE_OTHER") -> Reply:
    return _answer(request, [], finish=reason)


def prompt_blocked(request: RecordedRequest, *, reason: str = "SAFETY") -> Reply:
    return Reply(
        200,
        {
            "promptFeedback": {"blockReason": reason},
            "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
            "modelVersion": request.model,
        },
    )


def rate_limited(
    request: RecordedRequest,
    *,
    retry_delay: str | None = "37s",
    quota_id: str = "GenerateRequestsPerMinutePerProjectPerModel",
    quota_value: str = "10",
) -> Reply:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": quota_id,
                    "quotaDimensions": {
                        "location": "global",
                        "model": request.model or "gemini-2.5-flash-image",
                    },
                    "quotaValue": quota_value,
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
    ]
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    return _error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        *details,
    )


def daily_quota(request: RecordedRequest, *, retry_delay: str | None = "19s") -> Reply:
    """A per-day quota exceeded, as the free tier answers after its daily requests."""
    return rate_limited(
        request,
        retry_delay=retry_delay,
        quota_id="GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        quota_value="100",
    )


def free_tier_zero(request: RecordedRequest) -> Reply:
    return _error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. Quota "
        "exceeded for metric: generativelanguage.googleapis.com/"
        "generate_content_free_tier_requests, limit: 0, model: gemini-2.5-flash-image",
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/"
                    "generate_content_free_tier_requests",
                    "quotaValue": "0",
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "22s"},
    )


def slow(request: RecordedRequest, *, delay: float = 2.0) -> Reply:
    return success(request, delay=delay)


def _fixed(reply: Callable[[], Reply]) -> Behaviour:
    def behaviour(request: RecordedRequest) -> Reply:
        return reply()

    return behaviour


_PREPAY = (
    "Your prepayment credits are depleted. Please go to AI Studio at "
    "https://ai.studio/projects to manage your project and billing."
)

#: Every named behaviour. Values take the request and the options given to ``behave``.
BEHAVIOURS: dict[str, Behaviour] = {
    "success": success,
    "thoughts": thoughts,
    "multiple_images": multiple_images,
    "wrong_mime": lambda request: success(request, image=JPEG_16x8, mime="image/png"),
    "text_only": lambda request: _answer(
        request, [{"text": "I can only describe this scene, not draw it."}]
    ),
    "no_image": lambda request: _answer(request, [], finish="NO_IMAGE"),
    "finish_reason": finish_reason,
    "image_safety": lambda request: _answer(request, [], finish="IMAGE_SAFETY"),
    "safety": lambda request: _answer(request, [], finish="SAFETY"),
    "prohibited_content": lambda request: _answer(request, [], finish="PROHIBITED_CONTENT"),
    "prompt_blocked": prompt_blocked,
    "server_error": _fixed(
        lambda: _error(500, "INTERNAL", "An internal error has occurred. Please retry.")
    ),
    "bad_gateway": _fixed(
        lambda: Reply(
            502,
            b"<html><head><title>502 Bad Gateway</title></head>"
            b"<body><h1>Bad Gateway</h1></body></html>",
            {"content-type": "text/html"},
        )
    ),
    "unavailable": _fixed(
        lambda: _error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    ),
    "gateway_timeout": _fixed(
        lambda: _error(
            504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."
        )
    ),
    "rate_limited": rate_limited,
    "daily_quota": daily_quota,
    "free_tier_zero": free_tier_zero,
    "depleted": _fixed(lambda: _error(402, "RESOURCE_EXHAUSTED", _PREPAY)),
    "prepayment_depleted": _fixed(lambda: _error(429, "RESOURCE_EXHAUSTED", _PREPAY)),
    "spending_cap": _fixed(
        lambda: _error(
            429,
            "RESOURCE_EXHAUSTED",
            "Your project has exceeded its monthly spending cap. Please go to AI Studio at "
            "https://ai.studio/spend to manage your project spend cap.",
        )
    ),
    "invalid_key": _fixed(
        lambda: _error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            _error_info("API_KEY_INVALID"),
        )
    ),
    "expired_key": _fixed(
        lambda: _error(
            400,
            "INVALID_ARGUMENT",
            "API key expired. Please renew the API key.",
            _error_info("API_KEY_INVALID"),
        )
    ),
    "unauthenticated": _fixed(
        lambda: _error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
            _error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED"),
        )
    ),
    "leaked_key": _fixed(
        lambda: _error(
            403,
            "PERMISSION_DENIED",
            "Your API key was reported as leaked. Please use another API key.",
        )
    ),
    "service_disabled": _fixed(
        lambda: _error(
            403,
            "PERMISSION_DENIED",
            "Generative Language API has not been used in project 123 before or it is "
            "disabled. Enable it by visiting the console then retry.",
            _error_info("SERVICE_DISABLED"),
        )
    ),
    "bad_argument": _fixed(
        lambda: _error(
            400,
            "INVALID_ARGUMENT",
            "* GenerateContentRequest.generation_config.image_config.aspect_ratio: "
            "unsupported aspect ratio\n",
        )
    ),
    "payload_too_large": _fixed(
        lambda: _error(
            413, "INVALID_ARGUMENT", "Request payload size exceeds the limit: 20971520 bytes."
        )
    ),
    "location_unsupported": _fixed(
        lambda: _error(
            400, "FAILED_PRECONDITION", "User location is not supported for the API use."
        )
    ),
    "model_not_found": _fixed(
        lambda: _error(
            404,
            "NOT_FOUND",
            "models/unknown is not found for API version v1beta, or is not supported for "
            "generateContent.",
        )
    ),
    "slow": slow,
    "drop": _fixed(lambda: Reply(drop=True)),
    "malformed_json": _fixed(
        lambda: Reply(
            200, b'{"candidates": [{"content": {"parts": [', {"content-type": "application/json"}
        )
    ),
}


def model_description(model: str) -> dict[str, Any]:
    """What ``GET /v1beta/models/{model}`` answers for a key Google accepts."""
    pro = "-pro-" in model
    return {
        "name": f"models/{model}",
        "version": "2.0",
        "displayName": "Nano Banana Pro" if pro else "Nano Banana",
        "description": "Gemini 3 Pro Image Preview" if pro else "Gemini 2.5 Flash Preview Image",
        "inputTokenLimit": 65536 if pro else 32768,
        "outputTokenLimit": 32768,
        "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
    }


# --- request checks ----------------------------------------------------------------------------

_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):generateContent$")
_MODEL_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+)$")
_ASPECT_RATIOS = frozenset(ASPECT_SIZES)
_IMAGE_SIZES = frozenset(_SIZE_SCALE)


def _invalid(message: str) -> Reply:
    return _error(400, "INVALID_ARGUMENT", message)


def check_request(request: RecordedRequest) -> Reply | None:
    """Google's own refusals of a malformed request, or None if it is well formed."""
    body = request.json
    if not isinstance(body, dict):
        return _invalid("Invalid JSON payload received.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return _invalid("* GenerateContentRequest.contents: contents is not specified")
    parts = request.parts
    if not isinstance(parts, list) or not parts:
        return _invalid(
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty"
        )
    for position, turn in enumerate(contents):
        if not isinstance(turn, dict) or turn.get("role", "user") not in ("user", "model"):
            return _invalid(f"* GenerateContentRequest.contents[{position}].role: invalid role")
        if turn.get("role") != "model":
            continue
        for part in turn.get("parts") or ():
            inline = part.get("inlineData") if isinstance(part, dict) else None
            if not isinstance(inline, dict):
                continue
            try:
                data = base64.b64decode(inline.get("data") or "", validate=True)
            except (binascii.Error, ValueError):
                return _invalid(f"Invalid value at 'contents[{position}].parts.inline_data.data'")
            if part.get("thoughtSignature") != thought_signature(data):
                return _invalid(
                    f"Image part is missing a thought_signature in content position "
                    f"{position + 1}, part position 1."
                )
    for part in parts:
        inline = part.get("inlineData") if isinstance(part, dict) else None
        if inline is None:
            continue
        if not isinstance(inline, dict) or not inline.get("mimeType"):
            return _invalid("* inline_data.mime_type: mime_type is not specified")
        try:
            base64.b64decode(inline.get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            return _invalid("Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES)")
    config = body.get("generationConfig") or {}
    if not isinstance(config, dict):
        return _invalid("Invalid value at 'generation_config'")
    modalities = config.get("responseModalities") or []
    if not isinstance(modalities, list) or "IMAGE" not in modalities:
        return _invalid("This model only supports responseModalities including IMAGE.")
    image_config = config.get("imageConfig") or {}
    if not isinstance(image_config, dict):
        return _invalid("Invalid value at 'generation_config.image_config'")
    ratio = image_config.get("aspectRatio")
    if ratio is not None and ratio not in _ASPECT_RATIOS:
        return _invalid(f"Unsupported aspect ratio: {ratio}")
    size = image_config.get("imageSize")
    if size is not None:
        if "-pro-" not in (request.model or ""):
            return _invalid("imageSize is not supported for this model.")
        if size not in _IMAGE_SIZES:
            return _invalid(f"Unsupported image size: {size}")
    return None


# --- the server --------------------------------------------------------------------------------


class FakeGemini(FakeServer):
    """The fake Gemini server. Use as a context manager, or call ``start()`` and ``stop()``."""

    service = "Gemini"
    behaviours = BEHAVIOURS
    content_type = "application/json; charset=UTF-8"

    @property
    def base_url(self) -> str:
        """What ``nanobanana.api_base`` should be set to."""
        return f"{self.origin}/v1beta"

    def settings(self, **extra: Any) -> dict[str, Any]:
        """Provider settings pointing at this server, plus ``extra`` (dots as ``__``)."""
        settings: dict[str, Any] = {"nanobanana.api_base": self.base_url}
        settings.update({k.replace("__", "."): v for k, v in extra.items()})
        return settings

    def length_required(self) -> Reply:
        return _error(411, "INVALID_ARGUMENT", "Length required.")

    # the work

    def _handle(self, handler: Any, body: bytes) -> None:
        getting = handler.command == "GET"
        match = (_MODEL_PATH if getting else _PATH).match(handler.path.split("?", 1)[0])
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        key = handler.headers.get("x-goog-api-key")
        request = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            json=parsed,
            api_key=key,
            model=match.group("model") if match else None,
        )
        behaviour, options = self.behaviour_for(key)
        request.behaviour = (
            behaviour if isinstance(behaviour, str) else getattr(behaviour, "__name__", "custom")
        )
        with self._answering(request):
            self._reply(handler, request, match, key, behaviour, options)

    def _reply(
        self,
        handler: Any,
        request: RecordedRequest,
        match: re.Match[str] | None,
        key: str | None,
        behaviour: str | Behaviour,
        options: dict[str, Any],
    ) -> None:
        if match is None:
            reply = _error(404, "NOT_FOUND", f"Path {handler.path} was not found.")
        elif not key:
            reply = _error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        elif request.method == "GET":
            reply = self._check_key(request, behaviour, options)
        else:
            reply = check_request(request)
            if reply is None:
                function = BEHAVIOURS[behaviour] if isinstance(behaviour, str) else behaviour
                reply = function(request, **options)
        self._send(handler, reply)

    @staticmethod
    def _check_key(
        request: RecordedRequest, behaviour: str | Behaviour, options: dict[str, Any]
    ) -> Reply:
        """The key check: the key's error answers as they are, and a model for any 200."""
        function = BEHAVIOURS[behaviour] if isinstance(behaviour, str) else behaviour
        reply = function(request, **options)
        if reply.status == 200 and isinstance(reply.body, dict) and not reply.drop:
            return Reply(200, model_description(request.model or ""), delay=reply.delay)
        return reply


@contextmanager
def fake_gemini(**kwargs: Any) -> Iterator[FakeGemini]:
    """A running :class:`FakeGemini` for the duration of a ``with`` block (wrap as a fixture)."""
    with FakeGemini(**kwargs) as fake:
        yield fake
