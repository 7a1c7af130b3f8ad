"""Reading and checking what clients send: conversation titles and generation submissions.

A submission is checked against the chosen provider's declared capabilities
(:class:`~nproxy_core.plugins.ModelCapabilities`); every refusal is a ``ValidationError`` that
names the field at fault, before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nproxy_core.errors import ValidationError
from nproxy_core.i18n import _
from nproxy_core.plugins import Mode, ModelCapabilities, Provider

#: Longest prompt accepted, in characters; longer ones are refused, never cut.
PROMPT_MAX_CHARS = 4000
TITLE_MAX_CHARS = 200
IDEMPOTENCY_KEY_MAX_CHARS = 128
#: The longest a poll may be held (``?wait=N``): below common proxy and browser idle timeouts.
MAX_POLL_WAIT_SECONDS = 25
#: Images per page of the library, by default and at most.
LIBRARY_PAGE = 30
LIBRARY_MAX_PAGE = 100

_MODES = ", ".join(m.value for m in Mode)


def _invalid(field: str, message: str, reason: str = "invalid") -> ValidationError:
    return ValidationError(message, fields={field: reason})


def conversation_title(body: Mapping[str, Any]) -> str | None:
    """The optional ``title`` of a new conversation: trimmed, at most 200 characters."""
    title = body.get("title")
    if title is None:
        return None
    if not isinstance(title, str):
        raise _invalid("title", _("The title must be text."))
    title = " ".join(title.split())
    if len(title) > TITLE_MAX_CHARS:
        raise _invalid(
            "title",
            _(
                "The title is longer than ${title_max_chars} characters.",
                mapping={"title_max_chars": TITLE_MAX_CHARS},
            ),
        )
    return title or None


def idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header, checked: printable, at most 128 characters."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > IDEMPOTENCY_KEY_MAX_CHARS or not value.isprintable():
        raise _invalid(
            "Idempotency-Key",
            _(
                "The Idempotency-Key header must be printable text of at most ${limit} characters.",
                mapping={"limit": IDEMPOTENCY_KEY_MAX_CHARS},
            ),
        )
    return value


def poll_wait(value: str | None) -> float:
    """The ``wait`` query parameter of a poll: seconds from 0 to 25 (0 or absent: no wait)."""
    if value is None or value == "":
        return 0.0
    problem = _invalid(
        "wait",
        _(
            "wait must be a number of seconds from 0 to ${max_poll_wait_seconds}.",
            mapping={"max_poll_wait_seconds": MAX_POLL_WAIT_SECONDS},
        ),
    )
    try:
        seconds = float(value)
    except ValueError:
        raise problem from None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_POLL_WAIT_SECONDS:
        raise problem
    return seconds


@dataclass(frozen=True)
class Submission:
    """A checked submission; uploads are still ids (ownership is checked by the service)."""

    provider: str
    model: str
    mode: Mode
    prompt: str
    resolution: str
    batch_size: int
    strength: float | None
    input_upload_ids: tuple[str, ...]
    #: Generated images of the user's, used as inputs like uploads.
    input_image_ids: tuple[str, ...]
    capabilities: ModelCapabilities


def choose_provider(body: Mapping[str, Any], providers: Mapping[str, Provider]) -> str:
    name = body.get("provider")
    if name is None:
        if not providers:
            raise _invalid("provider", _("No image provider is enabled."), "unavailable")
        # The first provider named in ``nproxy.providers`` is the default.
        return next(iter(providers))
    if not isinstance(name, str) or name not in providers:
        known = ", ".join(providers) or "none"
        raise _invalid(
            "provider",
            _(
                "Unknown provider '${name}' (available: ${known}).",
                mapping={"name": str(name)[:64], "known": known},
            ),
        )
    return name


def choose_model(body: Mapping[str, Any], models: Sequence[ModelCapabilities]) -> ModelCapabilities:
    name = body.get("model")
    if name is None:
        return models[0]
    for capabilities in models:
        if capabilities.model == name:
            return capabilities
    for capabilities in models:
        # A retired id keeps working: its successor makes the image.
        if name in capabilities.aliases:
            return capabilities
    known = ", ".join(m.model for m in models)
    raise _invalid(
        "model",
        _(
            "Unknown model '${name}' (available: ${known}).",
            mapping={"name": str(name)[:64], "known": known},
        ),
    )


def _whole_number(value: Any, field: str, message: str) -> int:
    # JSON has one number type: 2.0 is a whole number, True is not a number at all.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(field, message)
    if isinstance(value, float):
        if not value.is_integer():
            raise _invalid(field, message)
        value = int(value)
    return value


def _id_list(body: Mapping[str, Any], field: str, message: str) -> list[str]:
    raw = body.get(field)
    raw = [] if raw is None else raw
    if not isinstance(raw, list) or not all(isinstance(i, str) for i in raw):
        raise _invalid(field, message)
    return raw


def rename(body: Mapping[str, Any]) -> str:
    """The ``title`` of a rename: required, trimmed, at most 200 characters."""
    if "title" not in body or body.get("title") is None:
        raise _invalid("title", _("The title is required."), "required")
    title = conversation_title(body)
    if title is None:
        raise _invalid("title", _("The title is empty. Give the conversation a name."), "required")
    return title


def library_limit(value: str | None) -> int:
    """The ``limit`` of a library page: 1 to 100, default 30."""
    if value is None or value == "":
        return LIBRARY_PAGE
    if not value.isdigit() or not 1 <= int(value) <= LIBRARY_MAX_PAGE:
        raise _invalid(
            "limit",
            _(
                "limit must be a whole number from 1 to ${library_max_page}.",
                mapping={"library_max_page": LIBRARY_MAX_PAGE},
            ),
        )
    return int(value)


def parse_submission(body: Mapping[str, Any], providers: Mapping[str, Provider]) -> Submission:
    """Check a submission body against the chosen provider's declared capabilities, one
    control at a time in this order (the first refusal is the one reported)."""
    provider = choose_provider(body, providers)
    caps = choose_model(body, _offered_models(provider, providers))
    mode = _mode(body, caps)
    prompt = _prompt(body)
    resolution = _resolution(body, caps)
    batch_size = _batch_size(body, caps)
    strength = _strength(body, mode, caps)
    raw_ids, image_ids = _input_images(body, mode, caps)
    return Submission(
        provider=provider,
        model=caps.model,
        mode=mode,
        prompt=prompt,
        resolution=resolution,
        batch_size=batch_size,
        strength=strength,
        input_upload_ids=tuple(raw_ids),
        input_image_ids=tuple(image_ids),
        capabilities=caps,
    )


def _offered_models(provider: str, providers: Mapping[str, Provider]) -> list[ModelCapabilities]:
    models = list(providers[provider].capabilities())
    if not models:
        raise _invalid(
            "provider",
            _("The provider '${provider}' offers no model.", mapping={"provider": provider}),
            "unavailable",
        )
    return models


def _mode(body: Mapping[str, Any], caps: ModelCapabilities) -> Mode:
    raw_mode = body.get("mode")
    if raw_mode is None:
        raise _invalid(
            "mode",
            _("The mode is required (one of: ${modes}).", mapping={"modes": _MODES}),
            "required",
        )
    try:
        mode = Mode(raw_mode) if isinstance(raw_mode, str) else None
    except ValueError:
        mode = None
    if mode is None:
        raise _invalid(
            "mode",
            _(
                "Unknown mode '${raw_mode}' (one of: ${modes}).",
                mapping={"raw_mode": str(raw_mode)[:64], "modes": _MODES},
            ),
        )
    if mode not in caps.modes:
        offered = ", ".join(m.value for m in caps.modes)
        raise _invalid(
            "mode",
            _(
                "The model ${model} does not offer ${mode} (only: ${offered}).",
                mapping={"model": caps.model, "mode": mode, "offered": offered},
            ),
        )
    return mode


def _prompt(body: Mapping[str, Any]) -> str:
    prompt = body.get("prompt")
    if prompt is None:
        raise _invalid("prompt", _("The prompt is required."), "required")
    if not isinstance(prompt, str):
        raise _invalid("prompt", _("The prompt must be text."))
    prompt = prompt.strip()
    if not prompt:
        raise _invalid("prompt", _("The prompt is empty. Describe the image you want."), "required")
    if len(prompt) > PROMPT_MAX_CHARS:
        raise _invalid(
            "prompt",
            _(
                "The prompt is longer than ${prompt_max_chars} characters.",
                mapping={"prompt_max_chars": PROMPT_MAX_CHARS},
            ),
            "too_long",
        )
    if "\x00" in prompt:
        raise _invalid("prompt", _("The prompt contains a NUL character."))
    return prompt


def _resolution(body: Mapping[str, Any], caps: ModelCapabilities) -> str:
    resolution = body.get("resolution")
    if resolution is None:
        resolution = caps.resolutions[0]
    if not isinstance(resolution, str) or resolution not in caps.resolutions:
        offered = ", ".join(caps.resolutions)
        raise _invalid(
            "resolution",
            _(
                "Unknown resolution '${resolution}' (one of: ${offered}).",
                mapping={"resolution": str(resolution)[:64], "offered": offered},
            ),
        )
    return resolution


def _batch_size(body: Mapping[str, Any], caps: ModelCapabilities) -> int:
    batch_size = body.get("batch_size")
    batch_size = (
        1
        if batch_size is None
        else _whole_number(batch_size, "batch_size", _("The batch size must be a whole number."))
    )
    if not 1 <= batch_size <= caps.max_batch:
        raise _invalid(
            "batch_size",
            _(
                "The batch size must be between 1 and ${max_batch}.",
                mapping={"max_batch": caps.max_batch},
            ),
            "out_of_range",
        )
    return batch_size


def _strength(body: Mapping[str, Any], mode: Mode, caps: ModelCapabilities) -> float | None:
    strength = body.get("strength")
    if strength is None:
        return None
    if mode is not Mode.IMAGE_TO_IMAGE:
        raise _invalid("strength", _("Strength applies to image-to-image only."), "not_allowed")
    if not caps.supports_strength:
        raise _invalid(
            "strength",
            _("The model ${model} does not support strength.", mapping={"model": caps.model}),
            "not_allowed",
        )
    if (
        isinstance(strength, bool)
        or not isinstance(strength, int | float)
        or not math.isfinite(strength)
        or not 0 <= strength <= 1
    ):
        raise _invalid("strength", _("The strength must be a number from 0 to 1."), "out_of_range")
    return float(strength)


def _input_images(
    body: Mapping[str, Any], mode: Mode, caps: ModelCapabilities
) -> tuple[list[str], list[str]]:
    """The input images named (uploads, and images already made): none for text-to-image,
    one to the model's most for image-to-image, each named once."""
    raw_ids = _id_list(
        body, "input_upload_ids", _("The input images must be a list of upload ids.")
    )
    image_ids = _id_list(
        body, "input_image_ids", _("The input images must be a list of image ids.")
    )
    if mode is Mode.TEXT_TO_IMAGE:
        for field, ids in (("input_upload_ids", raw_ids), ("input_image_ids", image_ids)):
            if ids:
                raise _invalid(
                    field,
                    _("Text-to-image takes no input images; choose image-to-image to use them."),
                    "not_allowed",
                )
    if mode is Mode.IMAGE_TO_IMAGE:
        if not raw_ids and not image_ids:
            raise _invalid(
                "input_upload_ids", _("Image-to-image needs at least one input image."), "required"
            )
        if len(raw_ids) + len(image_ids) > caps.max_input_images:
            raise _invalid(
                "input_image_ids" if image_ids else "input_upload_ids",
                _(
                    "The model ${model} takes at most ${max_input_images} input images.",
                    mapping={"model": caps.model, "max_input_images": caps.max_input_images},
                ),
                "too_many",
            )
        for field, ids in (("input_upload_ids", raw_ids), ("input_image_ids", image_ids)):
            if len(set(ids)) != len(ids):
                raise _invalid(field, _("The same input image is listed twice."))
    return raw_ids, image_ids
