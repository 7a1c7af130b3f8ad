"""A fake OpenAI Images API: a real HTTP server on 127.0.0.1 for tests.

It speaks the wire format of ``POST /v1/images/generations`` (JSON), ``POST /v1/images/edits``
(multipart, ``image[]`` or ``image`` files) and ``GET /v1/models/{model}`` (the free key check)
closely enough for the OpenAI provider, and each API key (``Authorization: Bearer KEY``) chooses
how it behaves. Only the standard library is used (Pillow, when a JPEG or WebP is asked for).

Usage::

    from fakes.openai_images import FakeOpenAI, fake_openai

    with fake_openai() as fake:
        settings = fake.settings()  # {"openai.api_base": fake.base_url}
        fake.behave("k1", "rate_limited", retry_after="7")
        ...  # key "server_error-2" answers 500 by its prefix; unknown keys succeed
        fake.requests[-1].json["size"], fake.requests[-1].form["quality"]

Choosing a behaviour for a key, first match wins: ``fake.behave(key, ...)``; the key's prefix
before the first ``-`` if it names a behaviour (``"slow-1"`` → ``slow``); the server's
``default`` (``"success"`` unless given).

Requests are checked before the behaviour runs, as OpenAI does: an unknown path is 404, no key
401, and a malformed body, a missing prompt or model, an ``n`` outside 1-10, an unknown
``size``, ``quality`` or ``output_format``, or an edit without an image 400
``invalid_request_error`` naming the ``param``. So a provider bug shows up as a 400.

Behaviours (``BEHAVIOURS``):

=========================  =======================================================================
``success``                200 ``{created, data: [{b64_json}], usage}``; the image is sized as asked
                           (``auto`` is 1024x1024) in the asked ``output_format`` (``image``:
                           bytes to send instead; ``delay``: seconds first)
``no_usage``               the same without ``usage``
``slow``                   waits ``delay`` seconds (default 2), then succeeds
``invalid_key``            401 ``invalid_api_key`` "Incorrect API key provided: sk-ab***yz"
``echo_key``               401 whose message quotes the whole key (as a careless proxy might)
``region``                 403 ``unsupported_country_region_territory``
``org_not_verified``       403 "Your organization must be verified to use the model"
``insufficient_quota``     429 ``insufficient_quota`` "You exceeded your current quota…"
``rate_limited``           429 ``rate_limit_exceeded`` with ``retry-after`` (``retry_after``, "20")
``billing_limit``          400 ``billing_hard_limit_reached``
``moderation_blocked``     400 ``moderation_blocked``
``content_policy``         400 ``content_policy_violation``
``bad_request``            400 ``invalid_value`` about the size (user input)
``model_not_found``        404 ``model_not_found``
``server_error``           500 ``server_error``
``unavailable``            503 "The engine is currently overloaded"
``drop``                   reads the request, then closes the socket without answering
``malformed_json``         200 with a truncated JSON body
``not_base64``             200 whose ``b64_json`` is not base64
``not_image``              200 whose ``b64_json`` decodes to text
``url_only``               200 with ``data: [{url}]`` and no ``b64_json``
=========================  =======================================================================

``GET /v1/models/{model}`` runs the key's behaviour too: an error answer is sent as it is, and
any 200 becomes the model object (``model_object``). Without a key it answers 401.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from fakes._server import Behaviour, FakeServer, Reply
from fakes.gemini import make_png

__all__ = [
    "BEHAVIOURS",
    "OUTPUT_TOKENS",
    "SIZES",
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "fake_openai",
    "model_object",
]

#: Sizes gpt-image-1 makes; ``auto`` answers 1024x1024 here.
SIZES: dict[str, tuple[int, int]] = {
    "1024x1024": (1024, 1024),
    "1024x1536": (1024, 1536),
    "1536x1024": (1536, 1024),
    "auto": (1024, 1024),
}
QUALITIES = frozenset({"low", "medium", "high", "auto"})
OUTPUT_FORMATS = frozenset({"png", "jpeg", "webp"})
#: Image output tokens OpenAI bills per image, by (square?, quality).
OUTPUT_TOKENS: dict[tuple[bool, str], int] = {
    (True, "low"): 272,
    (True, "medium"): 1056,
    (True, "high"): 4160,
    (False, "low"): 408,
    (False, "medium"): 1584,
    (False, "high"): 6240,
}
#: Input tokens the fake counts per reference image.
IMAGE_INPUT_TOKENS = 323


@dataclass
class RecordedRequest:
    """One request the fake received (recorded before its behaviour runs)."""

    method: str
    path: str
    #: Header names in lower case.
    headers: dict[str, str]
    body: bytes
    api_key: str | None
    #: ``generations``, ``edits``, ``model`` or "" (an unknown path).
    endpoint: str
    #: The parsed JSON body (generations), or None.
    json: Any = None
    #: The multipart text fields (edits), by name.
    form: dict[str, str] = field(default_factory=dict)
    #: The multipart files (edits): (field name, filename, content type, bytes).
    files: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    model: str | None = None
    behaviour: str = ""
    received_at: float = field(default_factory=time.time)

    @property
    def params(self) -> dict[str, Any]:
        """The request's parameters, whichever way they came."""
        if self.endpoint == "generations":
            return self.json if isinstance(self.json, dict) else {}
        return dict(self.form)


def _error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    return Reply(
        status,
        {"error": {"message": message, "type": type, "param": param, "code": code}},
        headers=headers or {},
    )


def _image_bytes(size: str, output_format: str) -> bytes:
    width, height = SIZES.get(size, (1024, 1024))
    png = make_png(width, height)
    if output_format == "png":
        return png
    from PIL import Image

    out = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.save(out, format={"jpeg": "JPEG", "webp": "WEBP"}[output_format])
    return out.getvalue()


def _usage(request: RecordedRequest) -> dict[str, Any]:
    params = request.params
    size = str(params.get("size") or "auto")
    quality = str(params.get("quality") or "auto")
    quality = "medium" if quality == "auto" else quality
    width, height = SIZES.get(size, (1024, 1024))
    output = OUTPUT_TOKENS[(width == height, quality)]
    text = max(1, len(str(params.get("prompt") or "")) // 4)
    images = IMAGE_INPUT_TOKENS * len(request.files)
    return {
        "total_tokens": text + images + output,
        "input_tokens": text + images,
        "output_tokens": output,
        "input_tokens_details": {"text_tokens": text, "image_tokens": images},
    }


def success(
    request: RecordedRequest,
    *,
    delay: float = 0.0,
    usage: bool = True,
    image: bytes | None = None,
) -> Reply:
    params = request.params
    output_format = str(params.get("output_format") or "png")
    data = (
        image
        if image is not None
        else _image_bytes(str(params.get("size") or "auto"), output_format)
    )
    body: dict[str, Any] = {
        "created": int(time.time()),
        "data": [{"b64_json": base64.b64encode(data).decode("ascii")}],
        "background": "opaque",
        "output_format": output_format,
        "quality": params.get("quality") or "medium",
        "size": params.get("size") or "1024x1024",
    }
    if usage:
        body["usage"] = _usage(request)
    return Reply(200, body, delay=delay)


def no_usage(request: RecordedRequest) -> Reply:
    return success(request, usage=False)


def slow(request: RecordedRequest, *, delay: float = 2.0) -> Reply:
    return success(request, delay=delay)


def invalid_key(request: RecordedRequest) -> Reply:
    key = request.api_key or ""
    masked = f"{key[:3]}***{key[-2:]}" if len(key) > 8 else "***"
    return _error(
        401,
        f"Incorrect API key provided: {masked}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def echo_key(request: RecordedRequest) -> Reply:
    return _error(401, f"Incorrect API key provided: {request.api_key}.", code="invalid_api_key")


def rate_limited(request: RecordedRequest, *, retry_after: str | None = "20") -> Reply:
    return _error(
        429,
        "Rate limit reached for gpt-image-1 in organization org-fake on images per minute "
        "(IPM): Limit 5, Used 5, Requested 1. Please try again in 12s.",
        type="requests",
        code="rate_limit_exceeded",
        headers={"retry-after": retry_after} if retry_after is not None else {},
    )


def _fixed(reply: Callable[[], Reply]) -> Behaviour:
    def behaviour(request: RecordedRequest) -> Reply:
        return reply()

    return behaviour


def _success_with(mutate: Callable[[dict[str, Any]], None]) -> Behaviour:
    def behaviour(request: RecordedRequest) -> Reply:
        reply = success(request)
        assert isinstance(reply.body, dict)
        mutate(reply.body)
        return reply

    return behaviour


def _set_b64(value: str) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        body["data"] = [{"b64_json": value}]

    return mutate


def _url_only(body: dict[str, Any]) -> None:
    body["data"] = [{"url": "https://example.invalid/image.png"}]


BEHAVIOURS: dict[str, Behaviour] = {
    "success": success,
    "no_usage": no_usage,
    "slow": slow,
    "invalid_key": invalid_key,
    "echo_key": echo_key,
    "region": _fixed(
        lambda: _error(
            403,
            "Country, region, or territory not supported",
            type="request_forbidden",
            code="unsupported_country_region_territory",
        )
    ),
    "org_not_verified": _fixed(
        lambda: _error(
            403,
            "Your organization must be verified to use the model `gpt-image-1`.",
            type="invalid_request_error",
        )
    ),
    "insufficient_quota": _fixed(
        lambda: _error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        )
    ),
    "rate_limited": rate_limited,
    "billing_limit": _fixed(
        lambda: _error(
            400,
            "Billing hard limit has been reached.",
            type="billing_limit_user_error",
            code="billing_hard_limit_reached",
        )
    ),
    "moderation_blocked": _fixed(
        lambda: _error(
            400,
            "Your request was rejected as a result of our safety system.",
            type="image_generation_user_error",
            code="moderation_blocked",
        )
    ),
    "content_policy": _fixed(
        lambda: _error(
            400,
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system.",
            code="content_policy_violation",
        )
    ),
    "bad_request": _fixed(
        lambda: _error(
            400,
            "Invalid value: '999x999'. Supported values are: '1024x1024', '1024x1536', "
            "'1536x1024', and 'auto'.",
            code="invalid_value",
            param="size",
        )
    ),
    "model_not_found": _fixed(
        lambda: _error(404, "The model `gpt-image-1` does not exist.", code="model_not_found")
    ),
    "server_error": _fixed(
        lambda: _error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )
    ),
    "unavailable": _fixed(
        lambda: _error(503, "The engine is currently overloaded, please try again later.")
    ),
    "drop": _fixed(lambda: Reply(drop=True)),
    "malformed_json": _fixed(lambda: Reply(200, b'{"created": 1, "data": [{"b64_js')),
    "not_base64": _success_with(_set_b64("this is not base64 !!")),
    "not_image": _success_with(_set_b64(base64.b64encode(b"just some text").decode())),
    "url_only": _success_with(_url_only),
}


def model_object(model: str) -> dict[str, Any]:
    """What ``GET /v1/models/{model}`` answers for a key OpenAI accepts."""
    return {"id": model, "object": "model", "created": 1745000000, "owned_by": "system"}


# --- request checks ----------------------------------------------------------------------------

_GENERATIONS = "/v1/images/generations"
_EDITS = "/v1/images/edits"
_MODEL_PATH = re.compile(r"^/v1/models/(?P<model>[^/]+)$")


def _invalid(message: str, param: str | None, code: str | None = None) -> Reply:
    return _error(400, message, code=code, param=param)


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], list[Any]] | None:
    if not content_type.startswith("multipart/form-data"):
        return None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        return None
    form: dict[str, str] = {}
    files: list[tuple[str, str, str, bytes]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            files.append((str(name), filename, part.get_content_type(), payload))
        elif name is not None:
            form[str(name)] = payload.decode("utf-8")
    return form, files


def check_request(request: RecordedRequest) -> Reply | None:
    """OpenAI's own refusals of a malformed request, or None if it is well formed."""
    if request.endpoint == "generations":
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _invalid("Unsupported content type; send application/json.", None)
        if not isinstance(request.json, dict):
            return _invalid(
                "We could not parse the JSON body of your request.", None, "invalid_json"
            )
        n = request.json.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            return _invalid(f"Invalid 'n': {n!r}; expected an integer from 1 to 10.", "n")
    else:
        if not request.files:
            return _invalid("Missing required parameter: 'image'.", "image")
        for name, _filename, content_type, _data in request.files:
            if name not in ("image", "image[]"):
                return _invalid(f"Unexpected file field {name!r}.", name)
            if content_type not in ("image/png", "image/jpeg", "image/webp"):
                return _invalid(
                    f"Invalid file: unsupported mimetype ('{content_type}').",
                    "image",
                    "invalid_image_format",
                )
        if len(request.files) > 16:
            return _invalid("Too many images: at most 16.", "image")
        n = request.form.get("n", "1")
        if not n.isdigit() or not 1 <= int(n) <= 10:
            return _invalid(f"Invalid 'n': {n!r}.", "n")
    params = request.params
    for name in ("prompt", "model"):
        value = params.get(name)
        if not isinstance(value, str) or not value.strip():
            return _invalid(
                f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
            )
    for name, allowed in (
        ("size", SIZES),
        ("quality", QUALITIES),
        ("output_format", OUTPUT_FORMATS),
    ):
        value = params.get(name)
        if value is not None and value not in allowed:
            return _invalid(
                f"Invalid value: '{value}'. Supported values are: "
                + ", ".join(f"'{v}'" for v in allowed)
                + ".",
                name,
                "invalid_value",
            )
    return None


# --- the server --------------------------------------------------------------------------------


class FakeOpenAI(FakeServer):
    """The fake OpenAI server. Use as a context manager, or call ``start()`` and ``stop()``."""

    service = "OpenAI"
    behaviours = BEHAVIOURS

    @property
    def base_url(self) -> str:
        """What ``openai.api_base`` should be set to."""
        return f"{self.origin}/v1"

    def settings(self, **extra: Any) -> dict[str, Any]:
        """Provider settings pointing at this server, plus ``extra`` (dots as ``__``)."""
        settings: dict[str, Any] = {"openai.api_base": self.base_url}
        settings.update({k.replace("__", "."): v for k, v in extra.items()})
        return settings

    def length_required(self) -> Reply:
        return _error(411, "Length required.")

    def _handle(self, handler: Any, body: bytes) -> None:
        path = handler.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in handler.headers.items()}
        auth = headers.get("authorization", "")
        key = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        model_match = _MODEL_PATH.match(path) if handler.command == "GET" else None
        endpoint = ""
        if handler.command == "POST" and path == _GENERATIONS:
            endpoint = "generations"
        elif handler.command == "POST" and path == _EDITS:
            endpoint = "edits"
        elif model_match:
            endpoint = "model"
        request = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers=headers,
            body=body,
            api_key=key,
            endpoint=endpoint,
            model=model_match.group("model") if model_match else None,
        )
        if endpoint == "generations":
            with suppress(ValueError, UnicodeDecodeError):
                request.json = json.loads(body)
        elif endpoint == "edits":
            parsed = _parse_multipart(headers.get("content-type", ""), body)
            if parsed is not None:
                request.form, request.files = parsed
        if endpoint in ("generations", "edits"):
            request.model = request.params.get("model")
        behaviour, options = self.behaviour_for(key)
        request.behaviour = (
            behaviour if isinstance(behaviour, str) else getattr(behaviour, "__name__", "custom")
        )
        with self._answering(request):
            self._send(handler, self._reply(request, key, behaviour, options))

    def _reply(
        self,
        request: RecordedRequest,
        key: str | None,
        behaviour: str | Behaviour,
        options: dict[str, Any],
    ) -> Reply:
        if not request.endpoint:
            return _error(404, f"Invalid URL ({request.method} {request.path})")
        if not key:
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        function = BEHAVIOURS[behaviour] if isinstance(behaviour, str) else behaviour
        if request.endpoint == "model":
            reply = function(request, **options)
            if reply.status == 200 and isinstance(reply.body, dict) and not reply.drop:
                return Reply(200, model_object(request.model or ""), delay=reply.delay)
            return reply
        refused = check_request(request)
        if refused is not None:
            return refused
        return function(request, **options)


@contextmanager
def fake_openai(**kwargs: Any) -> Iterator[FakeOpenAI]:
    """A running :class:`FakeOpenAI` for the duration of a ``with`` block."""
    with FakeOpenAI(**kwargs) as fake:
        yield fake
