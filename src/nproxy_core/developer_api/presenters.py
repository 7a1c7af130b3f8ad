"""How the developer API shows generations, keys and usage in JSON (DESIGN 4.10, 6)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from pyramid.request import Request

from nproxy_core.developer_api.interfaces import IApiSettings
from nproxy_core.developer_api.models import ApiKey
from nproxy_core.generation.services import GenerationState
from nproxy_core.i18n import localize
from nproxy_core.storage import IMediaLinks, IStorage


def isoformat(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def api_key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "created_at": isoformat(key.created_at),
        "last_used_at": isoformat(key.last_used_at),
    }


def generation_json(
    request: Request, state: GenerationState, response_format: str = "url"
) -> dict[str, Any]:
    """``{id, status, images: [{url, thumb_url} | {b64_json}], prompt, created_at, error}``;
    image URLs are absolute and signed, so they work without cookies until they expire."""
    if response_format == "b64_json":
        storage = request.find_service(IStorage)
        images = [
            {"b64_json": base64.b64encode(storage.get(image.storage_key)).decode()}
            for image in state.images
        ]
    else:
        links = request.find_service(IMediaLinks)
        seconds = request.find_service(IApiSettings).media_url_seconds
        images = []
        for image in state.images:
            url = links.signed_url(image.id, seconds)
            # The signature covers the asset: the same link with ?size=thumb is its thumbnail.
            images.append({"url": url, "thumb_url": f"{url}&size=thumb"})
    error = None
    if state.error_code:
        # Stored in English; a message of the product's own is read in the reader's language.
        message = state.error_message or ""
        error = {
            "code": state.error_code,
            "message": message and localize(request.localizer, message),
        }
    answer = {
        "id": str(state.id),
        "status": str(state.status),
        "images": images,
        "prompt": state.prompt,
        "created_at": isoformat(state.created_at),
        "error": error,
    }
    if state.text:
        # The model's words beside the picture, when a template asked for them.
        answer["text"] = state.text
    return answer
