"""OpenAI-compatible endpoints (DESIGN 4.13): ``POST /v1/images/generations`` (JSON) and
``POST /v1/images/edits`` (multipart), in OpenAI's request, answer and error shapes, so a tool
that speaks OpenAI's images API works against nproxy with a base URL and an ``npx_`` key.

They are another front on ``/v1/generate``'s path: the same key check and rate limit
(:func:`services.identify_caller`), the same limits, idempotency, uploads and submission
(:func:`services.submit_checked`), the same wait for the job (:func:`views.commit_and_wait`).
So a request costs the units ``/v1/generate`` would charge for it, and a refusal changes
nothing (the request's transaction is aborted: no hold, no upload, no job).

What differs is only the reading and the answering:

- ``model``: an nproxy model id (``demo-image-1``, ``gemini-2.5-flash-image``), or
  ``provider:model``; left out, the default model. Unknown: 404 ``model_not_found``.
- ``size``: ``auto`` (the model's default preset) or any ``WxH``, mapped to the model's preset of
  the nearest aspect ratio (as ``/v1/generate`` maps its sizes).
- ``quality``: among the model's presets of that shape ordered by pixels (then price), ``low``
  is the smallest, ``medium`` the middle one, ``high`` and ``hd`` the largest; ``auto`` and
  ``standard`` keep the default. A model with one preset per shape takes only ``auto`` and
  ``standard``.
- The answer waits until the images are made, up to ``nproxy.api.max_wait_seconds`` (or a
  smaller ``Prefer: wait=N``): OpenAI's clients cannot poll. A job not finished by then is
  answered 408 with error type ``timeout`` and ``x-should-retry: false`` (so the SDK does not
  submit it again), the job's ``Location`` and its id in the message: it still runs, is charged
  when its images are made, and ``GET /v1/generations/{id}`` gives them. 408 rather than 504:
  nothing failed on the server (a 5xx here means a fault, and the OpenAPI fuzz test holds the
  app to none), and the SDK raises ``openai.APIStatusError`` with ``status_code`` 408.
- Errors are ``{"error": {"message", "type", "param", "code"}}`` with the statuses the official
  SDK maps to its exception classes: 401 ``invalid_api_key``; 429 ``insufficient_quota`` for
  no subscription or a used-up quota (with ``x-should-retry: false``); 429
  ``rate_limit_exceeded`` with ``Retry-After``; 400 ``invalid_value`` with ``param``; 403
  ``plan_excludes_model``; 404 ``model_not_found``; 400 ``content_policy_violation`` when the
  provider refused the prompt; 503 ``provider_unavailable``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import exception_view_config, view_config

from nproxy_core.developer_api import presenters, services
from nproxy_core.developer_api.interfaces import IApiSettings
from nproxy_core.developer_api.schemas import (
    MAX_INPUT_IMAGES,
    RESPONSE_FORMATS,
    ApiRequest,
    nearest_preset,
    prefer_wait,
    preset_ratios,
)
from nproxy_core.developer_api.views import commit_and_wait
from nproxy_core.errors import APIError, NotFound, ValidationError
from nproxy_core.generation.schemas import choose_model, idempotency_key
from nproxy_core.i18n import _, localize
from nproxy_core.jsonbody import json_object
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import ModelCapabilities, Provider
from nproxy_core.uploads.interfaces import IUploadLimits
from nproxy_core.uploads.services import read_capped, too_large_error
from nproxy_core.uploads.views import MULTIPART_OVERHEAD

GENERATIONS_ROUTE = "v1.images.generations"
EDITS_ROUTE = "v1.images.edits"

QUALITIES = ("auto", "standard", "low", "medium", "high", "hd", "xhigh", "max")
#: Parameters OpenAI's API takes that change nothing here, and the values accepted for them.
IGNORED: dict[str, tuple[Any, ...] | None] = {
    "user": None,  # any value
    "safety_identifier": None,
    "moderation": ("auto", "low"),
    "style": ("vivid", "natural"),
    "background": ("auto",),
    "stream": (False, "false"),
    "partial_images": (0, "0"),
}
GENERATION_FIELDS = {"model", "prompt", "n", "size", "quality", "response_format"}
EDIT_FIELDS = GENERATION_FIELDS | {"image", "image[]"}
_SIZE = re.compile(r"^([1-9]\d{0,4})x([1-9]\d{0,4})$")

#: nproxy's field names (those of ``/v1/generate`` and the chat) as OpenAI's requests call them.
PARAM_NAMES = {
    "input_images": "image",
    "input_upload_ids": "image",
    "file": "image",
    "provider": "model",
    "mode": "model",
    "batch_size": "n",
    "resolution": "size",
    "aspect_ratio": "size",
}
#: A refusal that no retry would change: the SDK is told not to retry it.
NO_RETRY = {"x-should-retry": "false"}


class ModelNotFound(NotFound, status=404, code="model_not_found"):
    pass


class GenerationTimeout(APIError, status=408, code="timeout"):
    """The job did not finish within the wait; it still runs (see the module's notes)."""


class GenerationFailed(APIError, status=503, code="provider_unavailable"):
    """The job ended with no image; ``code`` is its error code."""

    def __init__(self, message: str, code: str, param: str | None) -> None:
        super().__init__(message, fields={param: code} if param else None)
        self.code = code


def _bad(param: str, message: str, reason: str = "invalid") -> ValidationError:
    return ValidationError(message, fields={param: reason})


# --- reading a request ---------------------------------------------------------------------


def resolve_model(value: Any, providers: Mapping[str, Provider]) -> tuple[str, ModelCapabilities]:
    """(provider, model) for OpenAI's ``model``: an nproxy id, ``provider:model``, or None
    (the default model of the first provider). Raises ModelNotFound (404)."""
    if not providers:
        raise _bad("model", _("No image provider is enabled."), "unavailable")
    if value is None:
        name = next(iter(providers))
        models = list(providers[name].capabilities())
        if not models:
            raise _bad(
                "model",
                _("The provider '${name}' offers no model.", mapping={"name": name}),
                "unavailable",
            )
        return name, models[0]
    if not isinstance(value, str) or not value.strip():
        raise _bad("model", _("model must be a model id, such as demo-image-1."))
    value = value.strip()
    prefix, colon, rest = value.partition(":")
    candidates: Sequence[tuple[str, str]]
    if colon and prefix in providers:
        candidates = [(prefix, rest)]
    else:
        candidates = [(name, value) for name in providers]
    for name, model in candidates:
        models = list(providers[name].capabilities())
        if not models:
            continue
        try:
            # The chat's own lookup: whatever it resolves (aliases too) resolves here.
            return name, choose_model({"model": model}, models)
        except ValidationError:
            continue
    known = ", ".join(
        caps.model for provider in providers.values() for caps in provider.capabilities()
    )
    raise ModelNotFound(
        _(
            "The model '${value}' does not exist (available: ${known}).",
            mapping={"value": value[:64], "known": known},
        ),
        fields={"model": "not_found"},
    )


def _same_shape(a: float, b: float) -> bool:
    return abs(math.log(a / b)) < 1e-6


def choose_preset(caps: ModelCapabilities, size: Any, quality: Any) -> str | None:
    """The model's preset for OpenAI's ``size`` and ``quality``; None keeps its default."""
    if size is None or size == "auto":
        base = None
    else:
        match = _SIZE.match(size) if isinstance(size, str) else None
        if match is None:
            raise _bad(
                "size",
                _(
                    "Unknown size '${size}': give auto or WIDTHxHEIGHT, e.g. 1024x1024.",
                    mapping={"size": str(size)[:32]},
                ),
            )
        base = nearest_preset(caps, int(match.group(1)), int(match.group(2)))
        if base is None:
            raise _bad(
                "size",
                _("The model ${model} does not offer sizes.", mapping={"model": caps.model}),
                "unavailable",
            )
    if quality is None or quality in ("auto", "standard"):
        return base
    if quality not in QUALITIES:
        raise _bad(
            "quality",
            _(
                "Unknown quality '${quality}' (one of: ${qualities}).",
                mapping={"quality": str(quality)[:32], "qualities": ", ".join(QUALITIES)},
            ),
        )
    anchor = base or caps.resolutions[0]
    ratios = preset_ratios(caps)
    tiers = [anchor]
    if anchor in ratios:
        tiers = [r for r in ratios if _same_shape(ratios[r], ratios[anchor])]
    if len(tiers) < 2:
        raise _bad(
            "quality",
            _(
                "The model ${model} has one quality: give auto or standard.",
                mapping={"model": caps.model},
            ),
            "unavailable",
        )

    def weight(name: str) -> tuple[int, Any]:
        width, height = caps.sizes.get(name, (0, 0))
        return width * height, caps.usd_per_image.get(name, 0)

    tiers.sort(key=weight)
    if quality == "low":
        return tiers[0]
    if quality == "medium":
        return tiers[(len(tiers) - 1) // 2]
    return tiers[-1]


def _check_fields(fields: Any, allowed: set[str]) -> None:
    for name in fields:
        if name in allowed:
            continue
        if name in IGNORED:
            values = IGNORED[name]
            if values is None or fields[name] in values:
                continue
            raise _bad(
                name,
                _(
                    "${name} '${value}' is not supported here.",
                    mapping={"name": name, "value": str(fields[name])[:32]},
                ),
            )
        raise _bad(
            name, _("Unknown parameter: '${name}'.", mapping={"name": str(name)[:32]}), "unknown"
        )


def _n(value: Any) -> Any:
    """``n`` as sent: JSON's number, or a form's text made a number (checked by the chat)."""
    if value is None:
        return 1
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise _bad("n", _("n must be a whole number."))
        return int(value)
    return value


def _fingerprint(route: str, fields: Mapping[str, Any], images: Sequence[bytes]) -> str:
    described = {
        "route": route,
        "fields": {k: str(v) for k, v in sorted(fields.items())},
        "images": [hashlib.sha256(data).hexdigest() for data in images],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def read_request(
    fields: Mapping[str, Any],
    images: Sequence[bytes],
    providers: Mapping[str, Provider],
    route: str,
) -> ApiRequest:
    """The OpenAI request as ``/v1/generate``'s checked request; ValidationError names the
    field as OpenAI calls it. What the chat checks (prompt, n, input images against the model)
    is checked on submission by the chat's own code."""
    provider, caps = resolve_model(fields.get("model"), providers)
    response_format = fields.get("response_format") or "url"
    if response_format not in RESPONSE_FORMATS:
        raise _bad(
            "response_format",
            _(
                "response_format must be one of: ${response_formats}.",
                mapping={"response_formats": ", ".join(RESPONSE_FORMATS)},
            ),
        )
    submission: dict[str, Any] = {
        "provider": provider,
        "model": caps.model,
        "mode": "image_to_image" if images else "text_to_image",
        "prompt": fields.get("prompt"),
        "batch_size": _n(fields.get("n")),
    }
    preset = choose_preset(caps, fields.get("size"), fields.get("quality"))
    if preset is not None:
        submission["resolution"] = preset
    return ApiRequest(
        submission, tuple(images), str(response_format), _fingerprint(route, fields, images)
    )


def _form_images(request: Request) -> tuple[dict[str, Any], list[bytes]]:
    """The text fields and image files of a multipart edit, each file checked for size as
    it is read (its content is checked as an upload on submission)."""
    max_bytes = request.find_service(IUploadLimits).max_bytes
    if request.content_length is not None and request.content_length > (
        MAX_INPUT_IMAGES * max_bytes + MULTIPART_OVERHEAD
    ):
        raise too_large_error(max_bytes)
    if request.content_type != "multipart/form-data":
        raise _bad("image", _("Send the edit as multipart/form-data with the image files."))
    try:
        items = list(request.POST.items())
    except Exception:
        # WebOb raises assorted errors on a malformed multipart body.
        raise _bad("image", _("The body is not a readable multipart/form-data body.")) from None
    fields: dict[str, Any] = {}
    images: list[bytes] = []
    for name, value in items:
        stream = getattr(value, "file", None)
        if name in ("image", "image[]"):
            if stream is None:
                raise _bad("image", _("image must be an image file."))
            if len(images) >= MAX_INPUT_IMAGES:
                raise _bad(
                    "image",
                    _(
                        "At most ${max_input_images} images are accepted.",
                        mapping={"max_input_images": MAX_INPUT_IMAGES},
                    ),
                    "too_many",
                )
            images.append(read_capped(stream, max_bytes))
        elif stream is not None:
            raise _bad(
                name,
                _(
                    "'${name}' is not supported here (a file was sent).",
                    mapping={"name": str(name)[:32]},
                ),
            )
        elif name in fields:
            raise _bad(
                name, _("'${name}' was sent more than once.", mapping={"name": str(name)[:32]})
            )
        else:
            fields[name] = value
    if not images:
        raise _bad("image", _("An edit needs at least one image (the field image)."), "required")
    return fields, images


# --- answering -----------------------------------------------------------------------------


def _param(exc: APIError) -> str | None:
    for name in exc.fields:
        return PARAM_NAMES.get(name, name)
    return None


def openai_error(exc: APIError) -> tuple[int, str, str | None, dict[str, str]]:
    """(status, type, code, extra headers) of an nproxy error in OpenAI's terms."""
    code = exc.code
    if code == "invalid_api_key":
        return 401, "invalid_request_error", "invalid_api_key", {}
    if code in ("no_active_subscription", "quota_exhausted"):
        return 429, "insufficient_quota", "insufficient_quota", NO_RETRY
    if code == "rate_limited":
        return 429, "requests", "rate_limit_exceeded", {}
    if code == "model_not_found":
        return 404, "invalid_request_error", "model_not_found", {}
    if code == "plan_excludes_model":
        return 403, "invalid_request_error", "plan_excludes_model", {}
    if code == "timeout":
        return 408, "timeout", "generation_timeout", NO_RETRY
    if code == "content_policy":
        return 400, "invalid_request_error", "content_policy_violation", {}
    if code == "invalid_input":
        return 400, "invalid_request_error", "invalid_input", {}
    if code == "validation_error":
        reason = next(iter(exc.fields.values()), None)
        named = {"unknown": "unknown_parameter", "required": "missing_required_parameter"}
        return 400, "invalid_request_error", named.get(reason or "", "invalid_value"), {}
    if exc.status >= 500:
        return exc.status, "server_error", code, {}
    return exc.status, "invalid_request_error", code, {}


@exception_view_config(APIError, route_name=GENERATIONS_ROUTE)
@exception_view_config(APIError, route_name=EDITS_ROUTE)
def openai_error_view(exc: APIError, request: Request) -> Response:
    """Every refusal of these routes, in OpenAI's shape. Raised, so the request's transaction
    is aborted: nothing it wrote stays."""
    status, kind, code, headers = openai_error(exc)
    param = _param(exc)
    # The message in the request's language (Accept-Language); type and code stay English.
    message = localize(request.localizer, exc.message)
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    response = Response(json_body=body, status=status)
    response.headers.update(exc.headers)
    response.headers.update(headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def _finished(
    request: Request, state: services.GenerationState, response_format: str, param: str | None
) -> dict[str, Any]:
    if not state.is_terminal:
        timeout = GenerationTimeout(
            _(
                "The generation ${id} did not finish within the wait. It still runs and is "
                "charged when its images are made: GET /v1/generations/${id} gives them. Do not "
                "send this request again.",
                mapping={"id": state.id},
            ),
        )
        timeout.headers["Location"] = request.route_url(
            "v1.generation", generation_id=str(state.id)
        )
        raise timeout
    if not state.images:
        code = state.error_code or "provider_unavailable"
        raise GenerationFailed(
            state.error_message or "The image could not be made. Please try again.",
            code,
            param if code == "invalid_input" else None,
        )
    request.response.headers["Cache-Control"] = "no-store"
    request.response.headers["X-Generation-Id"] = str(state.id)
    answer = presenters.generation_json(request, state, response_format)
    return {"created": int(state.created_at.timestamp()), "data": answer["images"]}


def _serve(
    request: Request, read: Any, param: str | None, default_prompt: str = ""
) -> dict[str, Any]:
    caller = services.identify_caller(request)
    settings = request.find_service(IApiSettings)
    wait = prefer_wait(request.headers.get("Prefer"), settings.max_wait_seconds)
    key = idempotency_key(request.headers.get("Idempotency-Key"))
    api: ApiRequest = read()
    # Refusals name the chat's and /v1/generate's fields: PARAM_NAMES gives OpenAI's names.
    generation_id = services.submit_checked(request, caller, api, key)
    state = commit_and_wait(
        request, caller, generation_id, wait, str(api.submission.get("prompt") or default_prompt)
    )
    return _finished(request, state, api.response_format, param)


@view_config(
    route_name=GENERATIONS_ROUTE, request_method="POST", renderer="json", require_csrf=False
)
def images_generations(request: Request) -> dict[str, Any]:
    providers = request.find_service(IPlugins).providers

    def read() -> ApiRequest:
        body = json_object(request)
        _check_fields(body, GENERATION_FIELDS)
        return read_request(body, (), providers, GENERATIONS_ROUTE)

    return _serve(request, read, "prompt")


@view_config(route_name=EDITS_ROUTE, request_method="POST", renderer="json", require_csrf=False)
def images_edits(request: Request) -> dict[str, Any]:
    providers = request.find_service(IPlugins).providers

    def read() -> ApiRequest:
        fields, images = _form_images(request)
        _check_fields(fields, EDIT_FIELDS)
        return read_request(fields, images, providers, EDITS_ROUTE)

    return _serve(request, read, "image")
