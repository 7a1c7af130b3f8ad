"""Nano Banana: Google's Gemini image models (``gemini-2.5-flash-image`` and the Pro models).

One :meth:`NanoBananaProvider.generate` call is one ``generateContent`` request with one key
over one path (a proxy or direct). It returns the image or raises one of the core's error
classes; the router does the retrying and key choice (see :mod:`.classify` for which answer
becomes which class).

Settings (all optional):

``nanobanana.api_base``
    default ``https://generativelanguage.googleapis.com/v1beta``.
``nanobanana.model``
    default ``gemini-2.5-flash-image``. A name containing ``-pro-`` (``gemini-3-pro-image-
    preview``) is treated as a Pro model: 14 reference images and 1K/2K/4K presets.
``nanobanana.timeout_seconds``
    read timeout, default 120: how long the model may think before answering.
``nanobanana.connect_timeout_seconds``
    default 10.
``nanobanana.response_modalities``
    default ``IMAGE``; ``TEXT IMAGE`` also lets the model answer in words. Image-only costs no
    text tokens and stops the model from replying with prose instead of a picture.
``nanobanana.price_per_million_output_tokens``, ``nanobanana.price_per_million_input_tokens``
    USD, for the spend estimate. Defaults are Google's published prices for the configured
    model: Flash 30 (image output) and 0.30 (input); Pro 120 and 2.00.
``nanobanana.price_per_image``
    USD, default 0.039 (about 1,290 output tokens at $30 per million): the spend estimate of
    an image whose answer carried no usage metadata.

Resolutions are presets naming an aspect ratio (and a size tier on Pro), listed in
:mod:`.presets`.

Estimated cost: ``promptTokenCount`` at the input price, plus ``candidatesTokenCount`` and
``thoughtsTokenCount`` (thinking is billed as output) at the output price. All output is
priced as image output (a Flash image is 1290 tokens, about 0.039 USD): text output is cheaper,
so the estimate errs high, which is the safe side for a spend limit. No usage metadata → no
estimate (``None``).

Strength. Gemini has no strength or denoising parameter, so the plugin honours it in the
prompt: for ``image_to_image`` with a strength set, one sentence is appended telling the model
how closely to follow the reference image(s). Strength means how much the image may change,
as in diffusion image-to-image (0 = keep the reference, 1 = free reinterpretation)::

    0.00-0.25  keep the reference almost exactly; change only what the instructions ask
    0.25-0.50  stay close: keep composition, subjects, colours and style
    0.50-0.75  keep the main subject and composition; style and details may change
    0.75-1.00  treat the reference as loose inspiration

It is guidance, not a guarantee: the model weighs it like any other instruction. Strength is
ignored for ``text_to_image``, where there is nothing to follow.

Key check (an admin's key test): ``GET {api_base}/models/{model}`` with the key. 200 with the
model's description means Google accepts the key for this model; every other answer is
classified like a ``generateContent`` error (a rejected key, depleted funds, a rate limit…).
It costs nothing. The same request without a key checks a network path (a proxy): any answer
from Google proves the path works.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx

from nproxy_core.plugins import (
    AttemptResult,
    GeneratedImage,
    ImageRequest,
    InvalidInputError,
    KeyCheck,
    KeyRejectedError,
    Mode,
    ModelCapabilities,
    Provider,
    ProviderError,
    RetryableError,
    identify_image,
    setting,
)

from .classify import NoImageError, classify_error_response, read_candidate
from .presets import Preset, is_pro_model, presets_for
from .transport import ClientPool, describe_proxy, fetch, post

__all__ = ["NanoBananaProvider", "NoImageError"]

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com/v1beta"
DEFAULT_MODEL = "gemini-2.5-flash-image"

#: Google's inline request limit: base64 inputs together must fit, or the call fails with 400.
MAX_REQUEST_BYTES = 20 * 1024 * 1024
#: A 4K PNG in base64 is well under this; anything bigger is not an answer we want to hold.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: A model description is a few hundred bytes.
MAX_CHECK_RESPONSE_BYTES = 256 * 1024
#: What one image costs when Gemini's answer carries no usage metadata (DESIGN 8).
DEFAULT_PRICE_PER_IMAGE = Decimal("0.039")
#: Keys shorter than this are not real Gemini keys and are not scrubbed from messages.
MIN_SCRUBBED_KEY_LENGTH = 8
#: The router's outer deadline is connect + read timeout + this (see ``attempt_deadline``).
DEADLINE_MARGIN_SECONDS = 30.0

# Google's published per-million-token prices (USD), used when no price setting is given.
_FLASH_PRICES = (Decimal("0.30"), Decimal("30"))
_PRO_PRICES = (Decimal("2.00"), Decimal("120"))

_STRENGTH_GUIDANCE = (
    (
        0.25,
        "Keep the reference image almost exactly as it is; change only what the "
        "instructions above ask for.",
    ),
    (
        0.50,
        "Stay close to the reference image: keep its composition, subjects, colours and style.",
    ),
    (
        0.75,
        "Keep the main subject and composition of the reference image; style and details "
        "may change.",
    ),
    (1.00, "Treat the reference image only as loose inspiration; you may change it freely."),
)

_KEY_SHAPE = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces: a header value


def _positive_seconds(raw: Any) -> float:
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _price(raw: Any) -> Decimal:
    value = Decimal(str(raw))
    if not value.is_finite() or value < 0:
        raise ValueError("must be a price of zero or more")
    return value


def _api_base(raw: Any) -> str:
    value = str(raw).rstrip("/")
    try:
        parts = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError("not a URL") from exc
    if parts.scheme not in ("http", "https") or not parts.host:
        raise ValueError("must be an http(s) URL")
    return value


def _model(raw: Any) -> str:
    value = str(raw).removeprefix("models/")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
        raise ValueError("not a model name")
    return value


def _modalities(raw: Any) -> tuple[str, ...]:
    values = tuple(str(raw).upper().replace(",", " ").split())
    if "IMAGE" not in values or not set(values) <= {"TEXT", "IMAGE"}:
        raise ValueError("must be IMAGE or TEXT IMAGE")
    return tuple(sorted(set(values), key=("TEXT", "IMAGE").index))


def _scrub_key(exc: ProviderError, api_key: str) -> None:
    # Nothing we write contains the key, but Google's messages and transport errors are quoted
    # in ours; scrub them so a key can never reach a log or the admin UI. (Real keys are ~39
    # characters; scrubbing a 1-letter test key would only garble.)
    if len(api_key) >= MIN_SCRUBBED_KEY_LENGTH and api_key in exc.message:
        exc.message = exc.message.replace(api_key, "[key]")
        exc.args = (exc.message,)


def strength_guidance(strength: float) -> str:
    """The sentence that carries ``strength`` (0-1) to the model; see the module docstring."""
    for upper, sentence in _STRENGTH_GUIDANCE:
        if strength <= upper:
            return sentence
    return _STRENGTH_GUIDANCE[-1][1]


class NanoBananaProvider(Provider):
    """The Gemini image API, one attempt at a time."""

    #: Gemini's daily quotas reset at midnight Pacific time.
    quota_day_zone = "America/Los_Angeles"
    supports_key_check = True

    #: What the read timeout leaves uncovered: sending the request and reading the whole body
    #: (see ``transport.post``). Below ``DEADLINE_MARGIN_SECONDS`` so that our own, clearer
    #: error comes before the router's deadline.
    body_margin_seconds: float = 20.0

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.api_base: str = setting(
            settings, "nanobanana.api_base", default=DEFAULT_API_BASE, cast=_api_base
        )
        self.model: str = setting(settings, "nanobanana.model", default=DEFAULT_MODEL, cast=_model)
        self.read_timeout: float = setting(
            settings, "nanobanana.timeout_seconds", default=120.0, cast=_positive_seconds
        )
        self.connect_timeout: float = setting(
            settings, "nanobanana.connect_timeout_seconds", default=10.0, cast=_positive_seconds
        )
        self.response_modalities: tuple[str, ...] = setting(
            settings, "nanobanana.response_modalities", default=("IMAGE",), cast=_modalities
        )
        pro = is_pro_model(self.model)
        default_in, default_out = _PRO_PRICES if pro else _FLASH_PRICES
        self.input_price: Decimal = setting(
            settings, "nanobanana.price_per_million_input_tokens", default=default_in, cast=_price
        )
        self.output_price: Decimal = setting(
            settings,
            "nanobanana.price_per_million_output_tokens",
            default=default_out,
            cast=_price,
        )
        self._price_per_image: Decimal = setting(
            settings, "nanobanana.price_per_image", default=DEFAULT_PRICE_PER_IMAGE, cast=_price
        )
        self._presets: dict[str, Preset] = presets_for(self.model)
        self._capabilities = ModelCapabilities(
            model=self.model,
            modes=(Mode.TEXT_TO_IMAGE, Mode.IMAGE_TO_IMAGE),
            resolutions=tuple(self._presets),
            max_batch=4,
            supports_strength=True,
            max_input_images=14 if pro else 3,
            aspect_ratios={name: p.aspect_ratio for name, p in self._presets.items()},
        )
        # Parsed once: httpx parses (and percent-encodes) a string URL on every request.
        self._model_url = httpx.URL(f"{self.api_base}/models/{self.model}")
        self._url = httpx.URL(f"{self._model_url}:generateContent")
        self._clients = ClientPool(
            httpx.Timeout(
                connect=self.connect_timeout,
                read=self.read_timeout,
                # Uploading up to 20 MB of references can be slow over a proxy.
                write=self.read_timeout,
                pool=self.connect_timeout,
            ),
            user_agent="nproxy-nanobanana",
        )

    # --- Provider interface -------------------------------------------------------------------

    def capabilities(self) -> Sequence[ModelCapabilities]:
        return (self._capabilities,)

    @property
    def attempt_deadline(self) -> float:
        return self.connect_timeout + self.read_timeout + DEADLINE_MARGIN_SECONDS

    @property
    def price_per_image(self) -> Decimal:
        return self._price_per_image

    def generate(
        self, request: ImageRequest, *, api_key: str, proxy_url: str | None = None
    ) -> AttemptResult:
        try:
            return self._generate(request, api_key, proxy_url)
        except ProviderError as exc:
            _scrub_key(exc, api_key)
            raise

    def check_key(self, *, api_key: str, proxy_url: str | None = None) -> KeyCheck:
        try:
            return self._check_key(api_key, proxy_url)
        except ProviderError as exc:
            _scrub_key(exc, api_key)
            raise

    def check_route(self, *, proxy_url: str | None) -> str:
        path = describe_proxy(proxy_url)
        answer = self._get_model(proxy_url, {}, path)
        return f"Gemini answered HTTP {answer.status} over {path}"

    def close(self) -> None:
        self._clients.close()

    # --- the key check ------------------------------------------------------------------------

    def _get_model(self, proxy_url: str | None, headers: dict[str, str], path: str) -> Any:
        return fetch(
            self._clients.client(proxy_url),
            "GET",
            self._model_url,
            headers={"accept": "application/json", **headers},
            total_seconds=self.connect_timeout + self.read_timeout + self.body_margin_seconds,
            max_bytes=MAX_CHECK_RESPONSE_BYTES,
            path=path,
        )

    def _check_key(self, api_key: str, proxy_url: str | None) -> KeyCheck:
        if not _KEY_SHAPE.fullmatch(api_key or ""):
            raise KeyRejectedError("the key is empty or contains characters a key cannot have")
        answer = self._get_model(proxy_url, {"x-goog-api-key": api_key}, describe_proxy(proxy_url))
        if not 200 <= answer.status < 300:
            raise classify_error_response(answer.status, answer.body, answer.headers)
        try:
            model = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            model = None
        if not isinstance(model, dict):
            raise RetryableError(
                f"Gemini answered {answer.status} to the key check with a body that is not a "
                "model description",
                http_status=answer.status,
            )
        name = str(model.get("displayName") or model.get("name") or self.model)[:80]
        methods = model.get("supportedGenerationMethods")
        if isinstance(methods, list) and "generateContent" not in methods:
            raise InvalidInputError(
                f"{self.model} does not offer generateContent to this key",
                http_status=answer.status,
            )
        return KeyCheck(f"{name} ({self.model}) is available to this key", answer.status)

    # --- one attempt --------------------------------------------------------------------------

    def _generate(
        self, request: ImageRequest, api_key: str, proxy_url: str | None
    ) -> AttemptResult:
        if not _KEY_SHAPE.fullmatch(api_key or ""):
            # Would fail inside httpx as a protocol error and be blamed on the path.
            raise KeyRejectedError("the key is empty or contains characters a key cannot have")
        body = self._request_body(request)
        path = describe_proxy(proxy_url)
        client = self._clients.client(proxy_url)
        answer = post(
            client,
            self._url,
            content=body,
            headers={
                "x-goog-api-key": api_key,
                "content-type": "application/json",
                "accept": "application/json",
            },
            total_seconds=self.connect_timeout + self.read_timeout + self.body_margin_seconds,
            max_bytes=MAX_RESPONSE_BYTES,
            path=path,
        )
        if not 200 <= answer.status < 300:
            raise classify_error_response(answer.status, answer.body, answer.headers)
        try:
            payload = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RetryableError(
                f"Gemini answered {answer.status} with a body that is not JSON",
                http_status=answer.status,
            ) from exc
        try:
            candidate = read_candidate(payload)
        except ProviderError as exc:
            exc.http_status = answer.status  # recorded with the attempt: "200, but blocked"
            raise
        # The declared mimeType can be wrong (image/png on JPEG bytes): the bytes decide.
        found = identify_image(candidate.data)
        if found is None:
            raise RetryableError(
                f"Gemini answered with image bytes of an unknown type "
                f"(declared {candidate.declared_mime or 'nothing'})",
                http_status=answer.status,
            )
        usage = payload.get("usageMetadata")
        usage = dict(usage) if isinstance(usage, dict) else {}
        return AttemptResult(
            image=GeneratedImage(
                data=candidate.data,
                mime=found.mime,
                width=found.width,
                height=found.height,
            ),
            estimated_cost=self.estimate_cost(usage),
            usage=usage,
        )

    def _request_body(self, request: ImageRequest) -> bytes:
        """The JSON body, after checking what the core should already have checked.

        The checks repeat the capability rules on purpose: a request that slipped through
        would otherwise cost a paid call to fail.
        """
        if request.model not in (None, "", self.model):
            raise InvalidInputError(f"model {request.model!r} is not offered (only {self.model})")
        preset = self._presets.get(request.resolution)
        if preset is None:
            raise InvalidInputError(
                f"resolution {request.resolution!r} is not one of {', '.join(self._presets)}"
            )
        prompt = request.prompt.strip()
        if not prompt:
            raise InvalidInputError("the prompt is empty")
        caps = self._capabilities
        if request.mode == Mode.IMAGE_TO_IMAGE:
            if not request.inputs:
                raise InvalidInputError("image_to_image needs at least one reference image")
            if len(request.inputs) > caps.max_input_images:
                raise InvalidInputError(
                    f"{self.model} takes at most {caps.max_input_images} reference images"
                )
        elif request.inputs:
            raise InvalidInputError("text_to_image takes no reference images")

        parts: list[dict[str, Any]] = []
        encoded_size = 0
        for image in request.inputs:
            if image.mime not in caps.input_mime_types:
                raise InvalidInputError(
                    f"reference images must be PNG, JPEG or WebP, not {image.mime}"
                )
            data = base64.b64encode(image.data).decode("ascii")
            encoded_size += len(data)
            parts.append({"inlineData": {"mimeType": image.mime, "data": data}})
        if encoded_size > MAX_REQUEST_BYTES:
            raise InvalidInputError("the reference images together exceed Gemini's 20 MB limit")

        if request.mode == Mode.IMAGE_TO_IMAGE and request.strength is not None:
            strength = float(request.strength)
            if not 0.0 <= strength <= 1.0:
                raise InvalidInputError("strength must be between 0 and 1")
            prompt = f"{prompt}\n\n{strength_guidance(strength)}"
        # Text after the images: the instruction then reads as being about them.
        parts.append({"text": prompt})

        image_config: dict[str, str] = {"aspectRatio": preset.aspect_ratio}
        if preset.image_size is not None:
            image_config["imageSize"] = preset.image_size
        body = {
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": {
                "responseModalities": list(self.response_modalities),
                "imageConfig": image_config,
            },
        }
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    def estimate_cost(self, usage: Mapping[str, Any]) -> Decimal | None:
        """USD for one answer from its ``usageMetadata``; see the module docstring."""

        def tokens(name: str) -> int:
            value = usage.get(name)
            return value if isinstance(value, int) and value > 0 else 0

        prompt = tokens("promptTokenCount")
        output = tokens("candidatesTokenCount") + tokens("thoughtsTokenCount")
        if not prompt and not output:
            return None
        cost = (prompt * self.input_price + output * self.output_price) / 1_000_000
        return cost.quantize(Decimal("0.000001"))
