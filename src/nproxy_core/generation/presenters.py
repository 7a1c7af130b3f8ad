"""How generations and conversations are shown to their owner in JSON (DESIGN 6)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyramid.request import Request

from nproxy_core.generation.models import Conversation, Generation, Message
from nproxy_core.plugin_registry import IPlugins


def isoformat(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def media_url(request: Request, asset_id: Any) -> str:
    return request.route_path("media", asset_id=str(asset_id))


def generation_json(request: Request, generation: Generation) -> dict[str, Any]:
    """``{id, status, images: [{id, url}], error: {code, message} | null}`` (DESIGN 6)."""
    error = None
    if generation.error_code:
        error = {"code": generation.error_code, "message": generation.error_message or ""}
    return {
        "id": str(generation.id),
        "status": str(generation.status),
        "images": [
            {"id": str(image.id), "url": media_url(request, image.id)}
            for image in generation.images
        ],
        "error": error,
    }


def conversation_summary_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "created_at": isoformat(conversation.created_at),
        "updated_at": isoformat(conversation.updated_at),
    }


def message_json(request: Request, message: Message) -> dict[str, Any]:
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
                "batch_size": message.batch_size,
                "created_at": isoformat(generation.created_at),
                "finished_at": isoformat(generation.finished_at),
            }
            for generation in message.generations
        ],
    }


def conversation_json(request: Request, conversation: Conversation) -> dict[str, Any]:
    return {
        **conversation_summary_json(conversation),
        "messages": [message_json(request, message) for message in conversation.messages],
    }


def models_json(request: Request) -> dict[str, Any]:
    """Every model of every enabled provider, in the order of ``nproxy.providers``."""
    models = []
    for name, provider in request.find_service(IPlugins).providers.items():
        models.extend(capabilities.as_dict(name) for capabilities in provider.capabilities())
    return {"models": models}


def library_image_json(request: Request, image: Any) -> dict[str, Any]:
    """One image of ``GET /api/v1/images`` (DESIGN 6)."""
    return {
        "id": str(image.id),
        "url": media_url(request, image.id),
        "generation_id": str(image.generation_id),
        "conversation_id": str(image.conversation_id),
        "prompt": image.prompt,
        "mode": str(image.mode),
        "resolution": image.resolution,
        "created_at": isoformat(image.created_at),
        "width": image.width,
        "height": image.height,
    }
