"""OpenAI's Images API (``gpt-image-1`` and its kin) as an nproxy image provider.

It imports only :mod:`nproxy_core.plugins`, the public plugin contract.

One :meth:`OpenAIProvider.generate` call is one request with one key over one path (a proxy or
direct): ``POST {api_base}/images/generations`` (JSON) for ``text_to_image``, or
``POST {api_base}/images/edits`` (multipart, the reference images as ``image[]`` files) for
``image_to_image``; always ``n=1`` (the core asks once per image) and the key as
``Authorization: Bearer``. It returns the image or raises one of the core's error classes; the
router does the retrying and key choice (see :mod:`.classify` for which answer becomes which
class).

Settings (all optional):

``openai.api_base``
    default ``https://api.openai.com/v1``.
``openai.models``
    the models offered, whitespace-separated, in the order people see them; the first is the
    default. Default ``gpt-image-1``. Known: ``gpt-image-1`` ("GPT Image 1") and
    ``gpt-image-1-mini``; another ``gpt-image-*`` id is priced like ``gpt-image-1``. DALL·E
    models take other sizes and qualities and are refused. An empty list, a repeated model or a
    name that is not a model id stops start-up with an error naming the setting.
``openai.quality``
    ``low``, ``medium`` (default) or ``high``: the quality of the bare presets (``square``,
    ``portrait``, ``landscape``); the other qualities are offered as ``<shape>_<quality>``
    (see :mod:`.models`).
``openai.output_format``
    ``png`` (default), ``jpeg`` or ``webp``.
``openai.timeout_seconds``
    read timeout, default 180: a high-quality image can take well over a minute.
``openai.connect_timeout_seconds``
    default 10.
``openai.price_per_image``
    USD: the spend estimate of an image whose answer carried no ``usage``, for every model.
    Unset, such an image is estimated at its preset's published price.

Each model declares its estimated USD cost per preset (``usd_per_image``, OpenAI's published
prices in :mod:`.models`), which the core turns into units, and ``max_input_images`` 16 (the
edits endpoint's limit for GPT Image models). Strength is not supported: the edits endpoint
has no such parameter.

Estimated cost of a finished image: from ``usage`` (``input_tokens_details.text_tokens`` and
``image_tokens`` at the input prices, ``output_tokens`` at the output price); without usage,
``openai.price_per_image`` or the preset's price.

Key check (an admin's key test): ``GET {api_base}/models/{model}`` with the key, for the first
(default) model: 200 with the model object means OpenAI accepts the key and lets it see the
model; every other answer is classified like a generation error. It costs nothing. The same
request without a key checks a network path (a proxy): any answer from OpenAI proves the path.

Thread safety: ``generate`` is called from many threads at once. Everything a call reads (each
model's presets, capabilities and prices, the URLs) is built once in the constructor and never
changed; the only shared mutable part is the client pool, which locks its own state.
"""

from __future__ import annotations

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
    one_of,
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

from .classify import classify_error_response, read_answer
from .models import (
    DEFAULT_MODELS,
    MODEL_ID,
    QUALITIES,
    Preset,
    TokenPrices,
    label_for,
    presets_for,
    token_prices_for,
)

__all__ = ["OpenAIProvider"]

DEFAULT_API_BASE = "https://api.openai.com/v1"
#: The edits endpoint takes up to 16 images for GPT Image models.
MAX_INPUT_IMAGES = 16
#: OpenAI refuses an edit input over 50 MB; the core's own upload limit is lower.
MAX_INPUT_BYTES = 50 * 1024 * 1024
#: A 1536x1024 PNG in base64 is a few MB; anything much bigger is not an answer we want to hold.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: A model object is a few hundred bytes.
MAX_CHECK_RESPONSE_BYTES = 256 * 1024
#: The router's outer deadline is connect + read timeout + this (see ``attempt_deadline``).
DEADLINE_MARGIN_SECONDS = 30.0
#: What the read timeout leaves uncovered (sending the request, reading the whole body); below
#: ``DEADLINE_MARGIN_SECONDS`` so that our own, clearer error comes before the router's deadline.
BODY_MARGIN_SECONDS = 20.0

_OUTPUT_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def _model_list(settings: Mapping[str, Any]) -> tuple[str, ...]:
    raw = settings.get("openai.models")
    if raw is None:
        return DEFAULT_MODELS
    names = [str(n) for n in raw] if isinstance(raw, list | tuple) else str(raw).split()
    if not names:
        raise PluginSettingError(
            f"setting 'openai.models' is empty: name at least one model, e.g. {DEFAULT_MODELS[0]!r}"
        )
    models: list[str] = []
    for name in names:
        if not MODEL_ID.fullmatch(name):
            raise PluginSettingError(
                f"malformed setting 'openai.models': {name!r} is not a model id "
                "(letters, digits, '.', '_' and '-', separated by spaces)"
            )
        if name.startswith("dall-e"):
            raise PluginSettingError(
                f"setting 'openai.models' names {name!r}: DALL-E models take other sizes and "
                "qualities; this provider offers GPT Image models (e.g. 'gpt-image-1')"
            )
        if name in models:
            raise PluginSettingError(f"setting 'openai.models' names {name!r} more than once")
        models.append(name)
    return tuple(models)


@dataclass(frozen=True)
class _Model:
    """One offered model, everything a call needs about it, built once."""

    id: str
    presets: Mapping[str, Preset]
    capabilities: ModelCapabilities
    token_prices: TokenPrices
    #: ``{api_base}/models/{id}``: the key check and the route check.
    model_url: httpx.URL


def _build_model(api_base: str, model: str, quality: str) -> _Model:
    presets = presets_for(model, quality)
    return _Model(
        id=model,
        presets=presets,
        capabilities=ModelCapabilities(
            model=model,
            modes=(Mode.TEXT_TO_IMAGE, Mode.IMAGE_TO_IMAGE),
            resolutions=tuple(presets),
            max_batch=4,
            supports_strength=False,
            max_input_images=MAX_INPUT_IMAGES,
            aspect_ratios={name: p.aspect_ratio for name, p in presets.items()},
            sizes={name: (p.width, p.height) for name, p in presets.items()},
            label=label_for(model),
            usd_per_image={name: p.usd for name, p in presets.items()},
        ),
        token_prices=token_prices_for(model),
        model_url=httpx.URL(f"{api_base}/models/{model}"),
    )


class OpenAIProvider(Provider):
    """OpenAI's Images API, one attempt at a time."""

    #: The plugin contract this provider was written for (``nproxy_core.plugins``).
    contract_version = "1.1"
    supports_key_check = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.api_base: str = setting(
            settings, "openai.api_base", default=DEFAULT_API_BASE, cast=api_base
        )
        #: The models offered, in the order people see them; the first is the default.
        self.models: tuple[str, ...] = _model_list(settings)
        #: The default model: the one the key check and the route check ask about.
        self.model: str = self.models[0]
        self.quality: str = setting(
            settings, "openai.quality", default="medium", cast=one_of(*QUALITIES)
        )
        self.output_format: str = setting(
            settings, "openai.output_format", default="png", cast=one_of(*_OUTPUT_MIME)
        )
        self.read_timeout: float = setting(
            settings, "openai.timeout_seconds", default=180.0, cast=positive_seconds
        )
        self.connect_timeout: float = setting(
            settings, "openai.connect_timeout_seconds", default=10.0, cast=positive_seconds
        )
        self._price_per_image_setting: Decimal | None = setting(
            settings, "openai.price_per_image", default=None, cast=price
        )
        # Built once and never changed: generate() runs on many threads and only reads these.
        self._models: dict[str, _Model] = {
            model: _build_model(self.api_base, model, self.quality) for model in self.models
        }
        self._generations_url = httpx.URL(f"{self.api_base}/images/generations")
        self._edits_url = httpx.URL(f"{self.api_base}/images/edits")
        self._clients = ClientPool(
            httpx.Timeout(
                connect=self.connect_timeout,
                read=self.read_timeout,
                # Uploading up to 16 references can be slow over a proxy.
                write=self.read_timeout,
                pool=self.connect_timeout,
            ),
            user_agent="nproxy-openai",
            # Fewer, smaller pools than Gemini's: OpenAI's answers are one image each.
            clients_per_path=16,
            keepalive_connections=32,
        )

    # --- Provider interface -------------------------------------------------------------------

    def capabilities(self) -> Sequence[ModelCapabilities]:
        return tuple(m.capabilities for m in self._models.values())

    @property
    def attempt_deadline(self) -> float:
        return self.connect_timeout + self.read_timeout + DEADLINE_MARGIN_SECONDS

    @property
    def price_per_image(self) -> Decimal:
        """``openai.price_per_image``, or the default model's price for its first preset."""
        if self._price_per_image_setting is not None:
            return self._price_per_image_setting
        caps = self._models[self.model].capabilities
        return caps.usd_per_image[caps.resolutions[0]]

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
        return f"OpenAI answered HTTP {answer.status} over {path}"

    def close(self) -> None:
        self._clients.close()

    def estimate_cost(
        self, usage: Mapping[str, Any], *, model: str | None = None
    ) -> Decimal | None:
        """USD for one answer of ``model`` (default: the first) from its ``usage``, at that
        model's token prices; None when the usage names no tokens.

        Input tokens without a text/image breakdown are priced as image input (the dearer)."""
        found = self._models.get(model or self.model)
        if found is None:
            raise ValueError(f"model {model!r} is not offered (only {', '.join(self.models)})")

        def tokens(source: Mapping[str, Any], name: str) -> int:
            value = source.get(name)
            return value if isinstance(value, int) and value > 0 else 0

        output = tokens(usage, "output_tokens")
        total_input = tokens(usage, "input_tokens")
        details = usage.get("input_tokens_details")
        details = details if isinstance(details, Mapping) else {}
        text_input = min(tokens(details, "text_tokens"), total_input)
        image_input = total_input - text_input
        if not output and not total_input:
            return None
        prices = found.token_prices
        cost = (
            text_input * prices.text_input
            + image_input * prices.image_input
            + output * prices.output
        ) / 1_000_000
        return cost.quantize(Decimal("0.000001"))

    # --- the key check ------------------------------------------------------------------------

    def _get_model(self, proxy_url: str | None, headers: dict[str, str], path: str) -> Any:
        return fetch(
            self._clients.client(proxy_url),
            "GET",
            self._models[self.model].model_url,
            headers={"accept": "application/json", **headers},
            total_seconds=self.connect_timeout + self.read_timeout + BODY_MARGIN_SECONDS,
            max_bytes=MAX_CHECK_RESPONSE_BYTES,
            path=path,
            service="OpenAI",
        )

    def _check_key(self, api_key: str, proxy_url: str | None) -> KeyCheck:
        check_key_shape(api_key)
        answer = self._get_model(
            proxy_url, {"authorization": f"Bearer {api_key}"}, describe_proxy(proxy_url)
        )
        if not 200 <= answer.status < 300:
            raise classify_error_response(answer.status, answer.body, answer.headers)
        try:
            described = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            described = None
        if not isinstance(described, dict) or described.get("id") != self.model:
            raise RetryableError(
                f"OpenAI answered {answer.status} to the key check with a body that is not "
                f"the model {self.model}",
                http_status=answer.status,
            )
        owner = str(described.get("owned_by") or "")[:60]
        owned = f", owned by {owner}" if owner else ""
        return KeyCheck(f"{self.model} is available to this key{owned}", answer.status)

    # --- one attempt --------------------------------------------------------------------------

    def _generate(
        self, request: ImageRequest, api_key: str, proxy_url: str | None
    ) -> AttemptResult:
        check_key_shape(api_key)
        model = self._model_for(request)
        preset = self._preset_for(request, model)
        prompt = request.prompt.strip()
        if not prompt:
            raise InvalidInputError("the prompt is empty")
        fields: dict[str, str] = {
            "model": model.id,
            "prompt": prompt,
            "n": "1",
            "size": preset.size,
            "quality": preset.quality,
            "output_format": self.output_format,
        }
        headers = {"authorization": f"Bearer {api_key}", "accept": "application/json"}
        path = describe_proxy(proxy_url)
        common: dict[str, Any] = {
            "total_seconds": self.connect_timeout + self.read_timeout + BODY_MARGIN_SECONDS,
            "max_bytes": MAX_RESPONSE_BYTES,
            "path": path,
            "service": "OpenAI",
        }
        client = self._clients.client(proxy_url)
        if request.mode == Mode.IMAGE_TO_IMAGE:
            files = self._input_files(request, model)
            answer = fetch(
                client,
                "POST",
                self._edits_url,
                headers=headers,
                data=fields,
                files=files,
                **common,
            )
        else:
            if request.inputs:
                raise InvalidInputError("text_to_image takes no reference images")
            body = {**fields, "n": 1}
            answer = fetch(
                client,
                "POST",
                self._generations_url,
                headers={**headers, "content-type": "application/json"},
                content=json.dumps(body, separators=(",", ":")).encode("utf-8"),
                **common,
            )
        if not 200 <= answer.status < 300:
            raise classify_error_response(answer.status, answer.body, answer.headers)
        parsed = read_answer(answer.body, answer.status)
        found = identify_image(parsed.data)
        if found is None:
            raise RetryableError(
                f"OpenAI answered {answer.status} with image bytes that are not an image "
                f"(asked for {self.output_format})",
                http_status=answer.status,
            )
        estimate = self.estimate_cost(parsed.usage, model=model.id)
        if estimate is None:
            estimate = (
                self._price_per_image_setting
                if self._price_per_image_setting is not None
                else preset.usd
            )
        return AttemptResult(
            image=GeneratedImage(
                data=parsed.data, mime=found.mime, width=found.width, height=found.height
            ),
            estimated_cost=estimate,
            usage=parsed.usage,
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

    @staticmethod
    def _preset_for(request: ImageRequest, model: _Model) -> Preset:
        preset = model.presets.get(request.resolution)
        if preset is None:
            raise InvalidInputError(
                f"resolution {request.resolution!r} is not one of {', '.join(model.presets)} "
                f"({model.id})"
            )
        return preset

    @staticmethod
    def _input_files(
        request: ImageRequest, model: _Model
    ) -> list[tuple[str, tuple[str, bytes, str]]]:
        """The reference images as ``image[]`` parts, after checking what the core should
        already have checked (a request that slipped through would cost a paid call)."""
        caps = model.capabilities
        if not request.inputs:
            raise InvalidInputError("image_to_image needs at least one reference image")
        if len(request.inputs) > caps.max_input_images:
            raise InvalidInputError(
                f"{model.id} takes at most {caps.max_input_images} reference images"
            )
        files: list[tuple[str, tuple[str, bytes, str]]] = []
        for n, image in enumerate(request.inputs):
            if image.mime not in _EXTENSIONS:
                raise InvalidInputError(
                    f"reference images must be PNG, JPEG or WebP, not {image.mime}"
                )
            if len(image.data) > MAX_INPUT_BYTES:
                raise InvalidInputError("a reference image exceeds OpenAI's 50 MB limit")
            name = f"image-{n}.{_EXTENSIONS[image.mime]}"
            files.append(("image[]", (name, image.data, image.mime)))
        return files
