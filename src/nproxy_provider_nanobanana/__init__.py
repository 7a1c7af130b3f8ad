"""Nano Banana: Google's Gemini image models (``gemini-2.5-flash-image``, ``gemini-3-pro-image-
preview`` and others), several side by side.

One :meth:`NanoBananaProvider.generate` call is one ``generateContent`` request with one key
over one path (a proxy or direct) to the model the request names. It returns the image or
raises one of the core's error classes; the router does the retrying and key choice (see
:mod:`.classify` for which answer becomes which class).

Settings (all optional):

``nanobanana.api_base``
    default ``https://generativelanguage.googleapis.com/v1beta``.
``nanobanana.models``
    the models offered, whitespace-separated, in the order people see them; the first is the
    default. Default ``gemini-2.5-flash-image gemini-3-pro-image-preview``. A name containing
    ``-pro-`` is treated as a Pro model: 14 reference images and 1K/2K/4K presets; any other
    takes 3 reference images and the ten shapes. An empty list, a repeated model or a name that
    is not a model id stops start-up with an error naming the setting.
``nanobanana.model``
    the older, single-model setting, still honoured: when it is set and ``nanobanana.models``
    is not, that one model is offered (an existing deployment keeps exactly what it had). When
    both are set, ``nanobanana.models`` decides, and ``nanobanana.model`` must be one of its
    models (otherwise start-up stops rather than silently dropping it).
``nanobanana.timeout_seconds``
    read timeout, default 120: how long the model may think before answering.
``nanobanana.connect_timeout_seconds``
    default 10.
``nanobanana.response_modalities``
    default ``IMAGE``; ``TEXT IMAGE`` also lets the model answer in words. Image-only costs no
    text tokens and stops the model from replying with prose instead of a picture.
``nanobanana.price_per_million_output_tokens``, ``nanobanana.price_per_million_input_tokens``
    USD, for the spend estimate of a finished attempt. Each model defaults to Google's published
    prices for its family (:mod:`.models`): Flash 30 (image output) and 0.30 (input); Pro 120
    and 2.00. A setting given applies to every model, overriding those defaults.
``nanobanana.price_per_image``
    USD: the spend estimate of an image whose answer carried no usage metadata, for every
    model. Unset, such an image is estimated at its model's published price for its preset
    (Flash 0.039; Pro 0.134 at 1K and 2K, 0.24 at 4K).

Each model declares its estimated USD cost per image for every preset (``usd_per_image``, from
Google's published prices in :mod:`.models`), which the core turns into units (DESIGN 4.12),
and a label: ``Nano Banana`` (Flash), ``Nano Banana Pro``, or the id made readable.

Resolutions are presets naming an aspect ratio (and a size tier on Pro), listed in
:mod:`.presets`.

Estimated cost: ``promptTokenCount`` at the input price, plus ``candidatesTokenCount`` and
``thoughtsTokenCount`` (thinking is billed as output) at the output price, both the
model's. All output is priced as image output (a Flash image is 1290 tokens, about 0.039 USD):
text output is cheaper, so the estimate errs high, which is the safe side for a spend limit. No
usage metadata → ``nanobanana.price_per_image``, or the model's published price per image.

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

Key check (an admin's key test): ``GET {api_base}/models/{model}`` with the key, for the first
(default) model. 200 with the model's description means Google accepts the key for this model;
every other answer is classified like a ``generateContent`` error (a rejected key, depleted
funds, a rate limit…). It costs nothing. The same request without a key checks a network path
(a proxy): any answer from Google proves the path works.

Thread safety: ``generate`` is called from many threads at once. Everything a call reads (each
model's URL, presets, capabilities and prices) is built once in the constructor and never
changed; the only shared mutable part is the client pool, which locks its own state.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from nproxy_core.plugins import (
    AttemptResult,
    GeneratedImage,
    ImageRequest,
    InvalidInputError,
    KeyCheck,
    Mode,
    ModelCapabilities,
    PluginSettingError,
    Provider,
    ProviderError,
    RetryableError,
    api_base,
    identify_image,
    positive_seconds,
    price,
    setting,
)
from nproxy_core.plugins.http import (
    ClientPool,
    check_key_shape,
    describe_proxy,
    fetch,
    scrub_key,
)

from .classify import NoImageError, classify_error_response, read_candidate
from .models import (
    ALIASES,
    DEFAULT_MODELS,
    MODEL_ID,
    label_for,
    status_for,
    token_prices_for,
    usd_per_image_for,
)
from .presets import Preset, is_pro_model, presets_for

__all__ = ["NanoBananaProvider", "NoImageError"]

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com/v1beta"
DEFAULT_MODEL = DEFAULT_MODELS[0]

#: Google's inline request limit: base64 inputs together must fit, or the call fails with 400.
MAX_REQUEST_BYTES = 20 * 1024 * 1024
#: A 4K PNG in base64 is well under this; anything bigger is not an answer we want to hold.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: A model description is a few hundred bytes.
MAX_CHECK_RESPONSE_BYTES = 256 * 1024
#: What one Flash image costs (DESIGN 8); the models' own prices are in :mod:`.models`.
DEFAULT_PRICE_PER_IMAGE = Decimal("0.039")
#: The router's outer deadline is connect + read timeout + this (see ``attempt_deadline``).
DEADLINE_MARGIN_SECONDS = 30.0

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


def _model(raw: Any) -> str:
    value = str(raw).removeprefix("models/")
    if not MODEL_ID.fullmatch(value):
        raise ValueError("not a model name")
    return value


def _model_list(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The models offered, from ``nanobanana.models`` and ``nanobanana.model`` (see the module
    docstring for which wins)."""
    single: str | None = setting(settings, "nanobanana.model", default=None, cast=_model)
    raw = settings.get("nanobanana.models")
    if raw is None:
        return (single,) if single is not None else DEFAULT_MODELS
    names = [str(n) for n in raw] if isinstance(raw, list | tuple) else str(raw).split()
    if not names:
        raise PluginSettingError(
            "setting 'nanobanana.models' is empty: name at least one model, e.g. "
            f"{' '.join(DEFAULT_MODELS)!r}"
        )
    models: list[str] = []
    for name in names:
        try:
            model = _model(name)
        except ValueError:
            raise PluginSettingError(
                f"malformed setting 'nanobanana.models': {name!r} is not a model id "
                "(letters, digits, '.', '_' and '-', separated by spaces)"
            ) from None
        if model in models:
            raise PluginSettingError(f"setting 'nanobanana.models' names {model!r} more than once")
        models.append(model)
    if single is not None and single not in models:
        raise PluginSettingError(
            f"setting 'nanobanana.model' ({single!r}) is not one of 'nanobanana.models' "
            f"({' '.join(models)}): drop 'nanobanana.model', which 'nanobanana.models' replaces"
        )
    return tuple(models)


def _modalities(raw: Any) -> tuple[str, ...]:
    values = tuple(str(raw).upper().replace(",", " ").split())
    if "IMAGE" not in values or not set(values) <= {"TEXT", "IMAGE"}:
        raise ValueError("must be IMAGE or TEXT IMAGE")
    return tuple(sorted(set(values), key=("TEXT", "IMAGE").index))


def strength_guidance(strength: float) -> str:
    """The sentence that carries ``strength`` (0-1) to the model; see the module docstring."""
    for upper, sentence in _STRENGTH_GUIDANCE:
        if strength <= upper:
            return sentence
    return _STRENGTH_GUIDANCE[-1][1]


@dataclass(frozen=True)
class _Model:
    """One offered model, everything a call needs about it, built once."""

    id: str
    presets: Mapping[str, Preset]
    capabilities: ModelCapabilities
    #: ``{api_base}/models/{id}``: the key check and the route check.
    model_url: httpx.URL
    #: ``{api_base}/models/{id}:generateContent``.
    url: httpx.URL
    #: USD per million tokens, for the spend estimate.
    input_price: Decimal
    output_price: Decimal


def _build_model(
    api_base: str,
    model: str,
    input_price: Decimal | None,
    output_price: Decimal | None,
    configured: tuple[str, ...] = (),
) -> _Model:
    presets = presets_for(model)
    default_in, default_out = token_prices_for(model)
    model_url = httpx.URL(f"{api_base}/models/{model}")
    return _Model(
        id=model,
        presets=presets,
        capabilities=ModelCapabilities(
            model=model,
            modes=(Mode.TEXT_TO_IMAGE, Mode.IMAGE_TO_IMAGE),
            resolutions=tuple(presets),
            max_batch=4,
            supports_strength=True,
            max_input_images=14 if is_pro_model(model) else 3,
            aspect_ratios={name: p.aspect_ratio for name, p in presets.items()},
            label=label_for(model),
            usd_per_image=usd_per_image_for(model, presets),
            status=status_for(model),
            aliases=tuple(a for a in ALIASES.get(model, ()) if a not in configured),
        ),
        model_url=model_url,
        url=httpx.URL(f"{model_url}:generateContent"),
        input_price=default_in if input_price is None else input_price,
        output_price=default_out if output_price is None else output_price,
    )


class NanoBananaProvider(Provider):
    """The Gemini image API, one attempt at a time."""

    #: Gemini's daily quotas reset at midnight Pacific time.
    quota_day_zone = "America/Los_Angeles"
    supports_key_check = True

    #: What the read timeout leaves uncovered: sending the request and reading the whole body
    #: (see ``nproxy_core.plugins.http.fetch``). Below ``DEADLINE_MARGIN_SECONDS`` so that our
    #: own, clearer error comes before the router's deadline.
    body_margin_seconds: float = 20.0

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.api_base: str = setting(
            settings, "nanobanana.api_base", default=DEFAULT_API_BASE, cast=api_base
        )
        #: The models offered, in the order people see them; the first is the default.
        self.models: tuple[str, ...] = _model_list(settings)
        #: The default model: the one the key check and the route check ask about.
        self.model: str = self.models[0]
        self.read_timeout: float = setting(
            settings, "nanobanana.timeout_seconds", default=120.0, cast=positive_seconds
        )
        self.connect_timeout: float = setting(
            settings, "nanobanana.connect_timeout_seconds", default=10.0, cast=positive_seconds
        )
        self.response_modalities: tuple[str, ...] = setting(
            settings, "nanobanana.response_modalities", default=("IMAGE",), cast=_modalities
        )
        # Overrides for every model; None keeps each model's published price.
        input_price: Decimal | None = setting(
            settings, "nanobanana.price_per_million_input_tokens", default=None, cast=price
        )
        output_price: Decimal | None = setting(
            settings, "nanobanana.price_per_million_output_tokens", default=None, cast=price
        )
        self._price_per_image_setting: Decimal | None = setting(
            settings, "nanobanana.price_per_image", default=None, cast=price
        )
        # Built once and never changed: generate() runs on many threads and only reads these.
        # Each model's URLs are parsed here: httpx parses (and percent-encodes) a string URL on
        # every request.
        self._models: dict[str, _Model] = {
            model: _build_model(self.api_base, model, input_price, output_price, self.models)
            for model in self.models
        }
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
        return tuple(m.capabilities for m in self._models.values())

    @property
    def input_price(self) -> Decimal:
        """The default model's USD per million input tokens."""
        return self._models[self.model].input_price

    @property
    def output_price(self) -> Decimal:
        """The default model's USD per million output tokens."""
        return self._models[self.model].output_price

    @property
    def attempt_deadline(self) -> float:
        return self.connect_timeout + self.read_timeout + DEADLINE_MARGIN_SECONDS

    @property
    def price_per_image(self) -> Decimal:
        """``nanobanana.price_per_image``, or the default model's price for its first preset.

        The router falls back to it only when an attempt carried no estimate, which this
        provider always gives (see :meth:`_no_usage_cost`)."""
        if self._price_per_image_setting is not None:
            return self._price_per_image_setting
        caps = self._models[self.model].capabilities
        return caps.usd_per_image.get(caps.resolutions[0], DEFAULT_PRICE_PER_IMAGE)

    def generate(
        self, request: ImageRequest, *, api_key: str, proxy_url: str | None = None
    ) -> AttemptResult:
        try:
            return self._generate(request, api_key, proxy_url)
        except ProviderError as exc:
            scrub_key(exc, api_key)
            raise

    def check_key(self, *, api_key: str, proxy_url: str | None = None) -> KeyCheck:
        try:
            return self._check_key(api_key, proxy_url)
        except ProviderError as exc:
            scrub_key(exc, api_key)
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
            self._models[self.model].model_url,
            headers={"accept": "application/json", **headers},
            total_seconds=self.connect_timeout + self.read_timeout + self.body_margin_seconds,
            max_bytes=MAX_CHECK_RESPONSE_BYTES,
            path=path,
            service="Gemini",
        )

    def _check_key(self, api_key: str, proxy_url: str | None) -> KeyCheck:
        check_key_shape(api_key)
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
        check_key_shape(api_key)
        model = self._model_for(request)
        body = self._request_body(request, model)
        path = describe_proxy(proxy_url)
        client = self._clients.client(proxy_url)
        answer = fetch(
            client,
            "POST",
            model.url,
            content=body,
            headers={
                "x-goog-api-key": api_key,
                "content-type": "application/json",
                "accept": "application/json",
            },
            total_seconds=self.connect_timeout + self.read_timeout + self.body_margin_seconds,
            max_bytes=MAX_RESPONSE_BYTES,
            path=path,
            service="Gemini",
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
        estimate = self.estimate_cost(usage, model=model.id)
        if estimate is None:
            estimate = self._no_usage_cost(model, request.resolution)
        return AttemptResult(
            image=GeneratedImage(
                data=candidate.data,
                mime=found.mime,
                width=found.width,
                height=found.height,
                # Sent back with the image when it is an input again (see _request_body).
                continuation=None
                if candidate.thought_signature is None
                else {"thoughtSignature": candidate.thought_signature, "prompt": request.prompt},
                text=candidate.text if request.with_text else None,
            ),
            estimated_cost=estimate,
            usage=usage,
        )

    def _model_for(self, request: ImageRequest) -> _Model:
        """The model the request names; no name (None or "") means the default model."""
        if not request.model:
            return self._models[self.model]
        found = self._models.get(request.model)
        if found is None:
            raise InvalidInputError(
                f"model {request.model!r} is not offered (only {', '.join(self.models)})"
            )
        return found

    def _request_body(self, request: ImageRequest, model: _Model) -> bytes:
        """The JSON body, after checking what the core should already have checked.

        The checks repeat the capability rules on purpose: a request that slipped through
        would otherwise cost a paid call to fail.
        """
        preset = model.presets.get(request.resolution)
        if preset is None:
            raise InvalidInputError(
                f"resolution {request.resolution!r} is not one of {', '.join(model.presets)} "
                f"({model.id})"
            )
        prompt = request.prompt.strip()
        if not prompt:
            raise InvalidInputError("the prompt is empty")
        caps = model.capabilities
        if request.mode == Mode.IMAGE_TO_IMAGE:
            if not request.inputs:
                raise InvalidInputError("image_to_image needs at least one reference image")
            if len(request.inputs) > caps.max_input_images:
                raise InvalidInputError(
                    f"{model.id} takes at most {caps.max_input_images} reference images"
                )
        elif request.inputs:
            raise InvalidInputError("text_to_image takes no reference images")

        parts: list[dict[str, Any]] = []
        # Images this model made with a thought signature go back as its own earlier turns,
        # each after the prompt that made it, with the signature (Gemini refuses them without).
        turns: list[dict[str, Any]] = []
        encoded_size = 0
        for image in request.inputs:
            if image.mime not in caps.input_mime_types:
                raise InvalidInputError(
                    f"reference images must be PNG, JPEG or WebP, not {image.mime}"
                )
            data = base64.b64encode(image.data).decode("ascii")
            encoded_size += len(data)
            part: dict[str, Any] = {"inlineData": {"mimeType": image.mime, "data": data}}
            signature = (image.continuation or {}).get("thoughtSignature")
            if isinstance(signature, str) and signature:
                earlier = str((image.continuation or {}).get("prompt") or "").strip()
                turns.append({"role": "user", "parts": [{"text": earlier or "An image."}]})
                turns.append({"role": "model", "parts": [{**part, "thoughtSignature": signature}]})
            else:
                parts.append(part)
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
            "contents": [*turns, {"role": "user", "parts": parts}],
            "generationConfig": {
                # Words beside the picture only when asked for (a template's description).
                "responseModalities": ["TEXT", "IMAGE"]
                if request.with_text
                else list(self.response_modalities),
                "imageConfig": image_config,
            },
        }
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    def estimate_cost(
        self, usage: Mapping[str, Any], *, model: str | None = None
    ) -> Decimal | None:
        """USD for one answer of ``model`` (default: the first) from its ``usageMetadata``, at
        that model's token prices; None when the usage names no tokens. See the module
        docstring."""
        found = self._models.get(model or self.model)
        if found is None:
            raise ValueError(f"model {model!r} is not offered (only {', '.join(self.models)})")

        def tokens(name: str) -> int:
            value = usage.get(name)
            return value if isinstance(value, int) and value > 0 else 0

        prompt = tokens("promptTokenCount")
        output = tokens("candidatesTokenCount") + tokens("thoughtsTokenCount")
        if not prompt and not output:
            return None
        cost = (prompt * found.input_price + output * found.output_price) / 1_000_000
        return cost.quantize(Decimal("0.000001"))

    def _no_usage_cost(self, model: _Model, resolution: str) -> Decimal:
        """The spend estimate of an answer without usage metadata: the setting, or the model's
        published price for the preset."""
        if self._price_per_image_setting is not None:
            return self._price_per_image_setting
        return model.capabilities.usd_per_image[resolution]
