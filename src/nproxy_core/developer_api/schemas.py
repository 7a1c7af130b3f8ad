"""Reading ``POST /v1/generate`` (DESIGN 4.10): the seed's sizes and aspect ratios mapped onto the
provider's presets, base64 input images, the answer's format, and ``Prefer: wait=N``.

What the chat's submission already checks (prompt, batch size, strength, modes, the number of
input images) is checked by the same code, ``generation.schemas.parse_submission``: the API
translates its body into the chat's, so both follow one set of rules.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nproxy_core.errors import ValidationError
from nproxy_core.generation.schemas import choose_model, choose_provider
from nproxy_core.i18n import _
from nproxy_core.plugins import ModelCapabilities, Provider

#: The sizes of the seed API, as width and height.
SEED_SIZES: dict[str, tuple[int, int]] = {
    "1024x1024": (1024, 1024),
    "1280x896": (1280, 896),
    "896x1280": (896, 1280),
    "1408x768": (1408, 768),
    "768x1408": (768, 1408),
}
RESPONSE_FORMATS = ("url", "b64_json")
FIELDS = {
    "prompt",
    "size",
    "aspect_ratio",
    "n",
    "mode",
    "input_images",
    "strength",
    "model",
    "provider",
    "response_format",
    "template",
    "inputs",
}
#: What a template submission may carry (the template decides prompt, model and size).
TEMPLATE_FIELDS = {"template", "inputs", "n", "provider", "response_format"}
#: Input images a request may carry at most, before the model's own (smaller) limit applies.
MAX_INPUT_IMAGES = 16
_RATIO = re.compile(r"^(\d{1,4}):(\d{1,4})$")
_DATA_URI = re.compile(r"^data:image/[a-z+.-]+;base64,", re.I)


def _invalid(field: str, message: str, reason: str = "invalid") -> ValidationError:
    return ValidationError(message, fields={field: reason})


@dataclass(frozen=True)
class ApiRequest:
    """A checked ``POST /v1/generate``: the chat's submission body, plus what only the API has."""

    submission: dict[str, Any]
    input_images: tuple[bytes, ...]
    response_format: str
    #: SHA-256 of the request as sent: a retry under the same Idempotency-Key must match it.
    fingerprint: str
    #: A template's image fields sent as base64 (``data:image/...``): (field name, bytes),
    #: stored as uploads before the submission names them.
    input_fields: tuple[tuple[str, bytes], ...] = ()


def _ratio_value(text: str) -> float | None:
    match = _RATIO.match(text)
    if match is None or int(match.group(2)) == 0 or int(match.group(1)) == 0:
        return None
    return int(match.group(1)) / int(match.group(2))


def preset_ratios(caps: ModelCapabilities) -> dict[str, float]:
    """Each preset of the model with a declared aspect ratio, as width / height."""
    return {
        name: value
        for name in caps.resolutions
        if (value := _ratio_value(caps.aspect_ratios.get(name, ""))) is not None
    }


def nearest_preset(caps: ModelCapabilities, width: int, height: int) -> str | None:
    """The model's first preset of the shape nearest ``width`` x ``height``; None when it
    declares no aspect ratios. Shapes are compared on a log scale, so 2:1 and 1:2 are as far
    from 1:1."""
    ratios = preset_ratios(caps)
    if not ratios:
        return None
    wanted = width / height
    return min(ratios, key=lambda name: abs(math.log(ratios[name] / wanted)))


def _resolution(body: Mapping[str, Any], caps: ModelCapabilities) -> str | None:
    """The preset for ``size`` or ``aspect_ratio``; None leaves the model's default."""
    size, ratio = body.get("size"), body.get("aspect_ratio")
    if size is not None and ratio is not None:
        raise _invalid("size", _("Give either size or aspect_ratio, not both."), "conflict")
    ratios = preset_ratios(caps)
    if size is not None:
        if not isinstance(size, str) or size not in SEED_SIZES:
            known = ", ".join(SEED_SIZES)
            raise _invalid(
                "size",
                _(
                    "Unknown size '${size}' (one of: ${known}).",
                    mapping={"size": str(size)[:32], "known": known},
                ),
            )
        preset = nearest_preset(caps, *SEED_SIZES[size])
        if preset is None:
            raise _invalid(
                "size",
                _("The model ${model} does not offer sizes.", mapping={"model": caps.model}),
                "unavailable",
            )
        return preset
    if ratio is not None:
        offered = {caps.aspect_ratios[name]: name for name in ratios}
        if not isinstance(ratio, str) or ratio not in offered:
            raise _invalid(
                "aspect_ratio",
                _(
                    "Unknown aspect ratio '${ratio}' (one of: ${known}).",
                    mapping={"ratio": str(ratio)[:32], "known": ", ".join(offered)},
                ),
            )
        return offered[ratio]
    return None


def _input_images(value: Any) -> tuple[bytes, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid("input_images", _("input_images must be a list of base64 strings."))
    if len(value) > MAX_INPUT_IMAGES:
        raise _invalid(
            "input_images",
            _("At most ${most} input images are accepted.", mapping={"most": MAX_INPUT_IMAGES}),
            "too_many",
        )
    images = []
    for n, text in enumerate(value):
        try:
            data = base64.b64decode(_DATA_URI.sub("", text.strip()), validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(
                "input_images",
                _("Input image ${number} is not valid base64.", mapping={"number": n + 1}),
                "not_base64",
            ) from None
        if not data:
            raise _invalid(
                "input_images",
                _("Input image ${number} is empty.", mapping={"number": n + 1}),
                "empty",
            )
        images.append(data)
    return tuple(images)


def parse_api_request(body: Mapping[str, Any], providers: Mapping[str, Provider]) -> ApiRequest:
    """Check a ``POST /v1/generate`` body, or raise ValidationError naming the field."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise _invalid(
            unknown[0],
            _(
                "Unknown field(s): ${names}.",
                mapping={"names": ", ".join(u[:32] for u in unknown[:5])},
            ),
            "unknown",
        )
    if "template" in body:
        return _template_request(body)
    provider = choose_provider(body, providers)
    models = list(providers[provider].capabilities())
    if not models:
        raise _invalid(
            "provider",
            _("The provider '${name}' offers no model.", mapping={"name": provider}),
            "unavailable",
        )
    caps = choose_model(body, models)
    images = _input_images(body.get("input_images"))

    response_format = body.get("response_format", "url")
    if response_format not in RESPONSE_FORMATS:
        raise _invalid(
            "response_format",
            _(
                "response_format must be one of: ${formats}.",
                mapping={"formats": ", ".join(RESPONSE_FORMATS)},
            ),
        )
    n = body.get("n", 1)
    submission: dict[str, Any] = {
        "provider": provider,
        "model": caps.model,
        "mode": body.get("mode") or ("image_to_image" if images else "text_to_image"),
        "prompt": body.get("prompt"),
        "batch_size": n,
    }
    resolution = _resolution(body, caps)
    if resolution is not None:
        submission["resolution"] = resolution
    if body.get("strength") is not None:
        submission["strength"] = body["strength"]
    fingerprint = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    ).hexdigest()
    return ApiRequest(submission, images, str(response_format), fingerprint)


def _fingerprint(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    ).hexdigest()


def _template_request(body: Mapping[str, Any]) -> ApiRequest:
    """``{template, inputs, n?}``: the template decides the prompt, model and size; an image
    field takes an upload id or a base64 ``data:image/...`` URI (stored as an upload)."""
    extra = sorted(set(body) - TEMPLATE_FIELDS)
    if extra:
        raise _invalid(
            extra[0],
            _(
                "A template request takes template, inputs, n and response_format; '${name}' is "
                "decided by the template.",
                mapping={"name": extra[0][:32]},
            ),
            "not_allowed",
        )
    response_format = body.get("response_format", "url")
    if response_format not in RESPONSE_FORMATS:
        raise _invalid(
            "response_format",
            _(
                "response_format must be one of: ${formats}.",
                mapping={"formats": ", ".join(RESPONSE_FORMATS)},
            ),
        )
    inputs = body.get("inputs")
    if inputs is not None and not isinstance(inputs, Mapping):
        raise _invalid("inputs", _("The inputs must be an object of field names and values."))
    inputs = dict(inputs or {})
    images: list[tuple[str, bytes]] = []
    for name, value in inputs.items():
        if isinstance(value, str) and _DATA_URI.match(value.strip()):
            try:
                data = base64.b64decode(_DATA_URI.sub("", value.strip()), validate=True)
            except (binascii.Error, ValueError):
                raise _invalid(
                    f"inputs.{str(name)[:40]}", _("The image is not valid base64."), "not_base64"
                ) from None
            if not data:
                raise _invalid(f"inputs.{str(name)[:40]}", _("The image is empty."), "empty")
            images.append((str(name), data))
    submission: dict[str, Any] = {"template": body.get("template"), "inputs": inputs}
    if body.get("n") is not None:
        submission["batch_size"] = body["n"]
    if body.get("provider") is not None:
        submission["provider"] = body["provider"]
    return ApiRequest(submission, (), str(response_format), _fingerprint(body), tuple(images))


def prefer_wait(header: str | None, max_wait: float) -> float:
    """Seconds to wait: ``Prefer: wait=N`` (RFC 7240) when smaller, else ``max_wait``."""
    if not header:
        return max_wait
    for part in header.split(","):
        name, _equals, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                seconds = float(value.strip())
            except ValueError:
                raise _invalid("Prefer", _("Prefer: wait=N needs a number of seconds.")) from None
            if not math.isfinite(seconds) or seconds < 0:
                raise _invalid("Prefer", _("Prefer: wait=N needs a number of seconds."))
            return min(seconds, max_wait)
    return max_wait
