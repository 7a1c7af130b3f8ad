"""How generations and conversations are shown to their owner in JSON (DESIGN 6)."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from pyramid.request import Request

from nproxy_core.generation.models import Conversation, Generation, Message
from nproxy_core.i18n import localize
from nproxy_core.plugins import ModelCapabilities
from nproxy_core.pricing import IUnitPrices
from nproxy_core.prompt_templates.services import texts_of
from nproxy_core.quota.summary import enabled_models, standing


def isoformat(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def media_url(request: Request, asset_id: Any) -> str:
    return request.route_path("media", asset_id=str(asset_id))


def thumb_url(request: Request, asset_id: Any) -> str:
    """The image's WebP thumbnail (at most 384 px a side): what tiles and lists show."""
    return request.route_path("media", asset_id=str(asset_id), _query={"size": "thumb"})


def generation_json(request: Request, generation: Generation) -> dict[str, Any]:
    """``{id, status, images: [{id, url}], error: {code, message} | null}`` (DESIGN 6)."""
    error = None
    if generation.error_code:
        # Stored in English; a message of the product's own is read in the reader's language.
        message = generation.error_message or ""
        error = {
            "code": generation.error_code,
            "message": message and localize(request.localizer, message),
        }
    answer = {
        "id": str(generation.id),
        "status": str(generation.status),
        "images": [
            # The model that made each image: a fallback's when the one asked for was exhausted.
            {
                "id": str(image.id),
                "url": media_url(request, image.id),
                "thumb_url": thumb_url(request, image.id),
                "model": image.model,
            }
            for image in generation.images
        ],
        "error": error,
    }
    text = getattr(generation, "text", None)
    if text:
        # The model's words beside the picture, when a template asked for them.
        answer["text"] = text
    return answer


def accepted_json(request: Request, generation: Generation) -> dict[str, Any]:
    """The 202 answer to asking for a generation again (a retry, a variation, an upscale): the
    new generation and the conversation it is in."""
    request.response.status = 202
    return {
        "id": str(generation.id),
        "status": str(generation.status),
        "conversation_id": str(generation.conversation_id),
    }


def conversation_summary_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "created_at": isoformat(conversation.created_at),
        "updated_at": isoformat(conversation.updated_at),
    }


def message_json(
    request: Request, message: Message, texts: dict[Any, str] | None = None
) -> dict[str, Any]:
    texts = texts or {}
    return {
        "id": str(message.id),
        "mode": str(message.mode),
        "prompt": message.prompt,
        "resolution": message.resolution,
        "batch_size": message.batch_size,
        "strength": message.strength,
        "input_upload_ids": list(message.input_upload_ids or ()),
        "inputs": [
            {"id": upload_id, "url": media_url(request, upload_id)}
            for upload_id in message.input_upload_ids or ()
        ],
        "provider": message.provider,
        "model": message.model,
        "created_at": isoformat(message.created_at),
        "generations": [
            {
                **generation_json(request, generation),
                **({"text": texts[generation.id]} if generation.id in texts else {}),
                "batch_size": message.batch_size,
                "created_at": isoformat(generation.created_at),
                "finished_at": isoformat(generation.finished_at),
            }
            for generation in message.generations
        ],
    }


def conversation_json(request: Request, conversation: Conversation) -> dict[str, Any]:
    texts = texts_of(
        request.db, [g.id for message in conversation.messages for g in message.generations]
    )
    return {
        **conversation_summary_json(conversation),
        "messages": [message_json(request, message, texts) for message in conversation.messages],
    }


def models_json(request: Request, user_id: int | None = None) -> dict[str, Any]:
    """Every model of every enabled provider, in the order of ``nproxy.providers``; each
    resolution preset as ``{id, label, aspect_ratio, width, height, units}`` (DESIGN 6, 4.12).

    For the user asking: ``max_batch`` is capped by their plan, and ``allowed`` says whether
    their plan or one of their packs can pay for the model. ``user_id`` defaults to the
    logged-in user's."""
    prices = request.find_service(IUnitPrices).costs(request.db)
    state = standing(request.db, request.identity.id if user_id is None else user_id)
    models = []
    for name, capabilities in enabled_models(request):
        units = prices[(name, capabilities.model)]
        described = capabilities.as_dict(name)
        described["max_batch"] = state.max_batch(capabilities)
        described["allowed"] = state.allows(capabilities.model)
        described["units"] = dict(units)
        described["resolutions"] = [
            resolution_json(capabilities, preset) | {"units": units[preset]}
            for preset in capabilities.resolutions
        ]
        models.append(described)
    return {"models": models}


#: Pixels on the long side of a preset whose provider gives only a ratio (Gemini's 1K tier),
#: by the size tier its name ends with.
_TIERS = {"_2k": 2048, "_4k": 4096}


def resolution_json(capabilities: ModelCapabilities, preset: str) -> dict[str, Any]:
    ratio = _reduced(capabilities.aspect_ratios.get(preset, ""))
    size = capabilities.sizes.get(preset)
    if size is None and ratio:
        w, h = (int(part) for part in ratio.split(":"))
        long_side = next((px for tier, px in _TIERS.items() if preset.endswith(tier)), 1024)
        size = (
            (long_side, round(long_side * h / w))
            if w >= h
            else (round(long_side * w / h), long_side)
        )
    label = re.sub(r"(\d)k\b", r"\1K", preset.replace("_", " ").capitalize())
    return {
        "id": preset,
        "label": label,
        "aspect_ratio": ratio or None,
        "width": size[0] if size else None,
        "height": size[1] if size else None,
    }


def _reduced(ratio: str) -> str:
    """``512:384`` as people say it, ``4:3``; "" when there is no ratio to tell."""
    width, _, height = ratio.partition(":")
    if not (width.isdigit() and height.isdigit()) or not int(width) or not int(height):
        return ""
    divisor = math.gcd(int(width), int(height))
    return f"{int(width) // divisor}:{int(height) // divisor}"


def library_image_json(request: Request, image: Any) -> dict[str, Any]:
    """One image of ``GET /api/v1/images`` (DESIGN 6)."""
    return {
        "id": str(image.id),
        "url": media_url(request, image.id),
        "thumb_url": thumb_url(request, image.id),
        "generation_id": str(image.generation_id),
        "conversation_id": str(image.conversation_id),
        "prompt": image.prompt,
        "mode": str(image.mode),
        "resolution": image.resolution,
        "created_at": isoformat(image.created_at),
        "width": image.width,
        "height": image.height,
        "provider": image.provider,
        "model": image.model,
        "favorite": bool(image.favorite),
        "shared": image.share_token is not None,
    }
