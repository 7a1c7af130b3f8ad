"""Image tools: one generated image of a user, and what they can do with it."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import sqlalchemy as sa
from pyramid.request import Request
from sqlalchemy.orm import Session

from nproxy_core.db import parse_uuid
from nproxy_core.errors import NotFound, ValidationError
from nproxy_core.generation import library
from nproxy_core.generation import services as generations
from nproxy_core.generation.models import Generation, GenerationImage
from nproxy_core.generation.presenters import resolution_json
from nproxy_core.generation.schemas import PROMPT_MAX_CHARS
from nproxy_core.i18n import _
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import Mode, ModelCapabilities
from nproxy_core.pricing import IUnitPrices
from nproxy_core.storage import delete_after_commit

#: What an upscale asks the model, before the prompt that made the image.
UPSCALE_INSTRUCTION = (
    "Recreate this image at a higher resolution exactly as it is: the same subject, "
    "composition, colours and style, with sharper fine detail. The image shows: "
)
#: Bytes of randomness in a share token (URL-safe base64: 32 characters).
SHARE_TOKEN_BYTES = 24


def _not_found() -> NotFound:
    # The same answer for a malformed id, an unknown one and another user's: nothing leaks.
    return NotFound(_("Not found."))


def owned_image(db: Session, user_id: int, image_id: Any, *, lock: bool = False) -> GenerationImage:
    """The user's generated image, or NotFound."""
    iid = parse_uuid(image_id)
    if iid is None:
        raise _not_found()
    query = sa.select(GenerationImage).where(
        GenerationImage.id == iid, GenerationImage.user_id == user_id
    )
    image = db.scalar(query.with_for_update() if lock else query)
    if image is None:
        raise _not_found()
    return image


def image_view(db: Session, user_id: int, image_id: Any) -> library.LibraryImage:
    iid = parse_uuid(image_id)
    found = None if iid is None else library.library_image(db, user_id, iid)
    if found is None:
        raise _not_found()
    return found


# --- what the image was made with -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Origin:
    """The controls that made an image, and the model's capabilities now (None when the
    provider or model is no longer offered)."""

    conversation_id: Any
    prompt: str
    provider: str
    model: str
    resolution: str
    capabilities: ModelCapabilities | None


def origin(request: Request, image: GenerationImage) -> Origin:
    generation = request.db.get(Generation, image.generation_id)
    message = generation.message
    # The model that made it (a fallback's, when the one asked for was exhausted).
    provider = image.provider or message.provider
    model = image.model or message.model
    plugin = request.find_service(IPlugins).providers.get(provider)
    capabilities = None
    if plugin is not None:
        capabilities = next((c for c in plugin.capabilities() if c.model == model), None)
    return Origin(
        generation.conversation_id,
        message.prompt,
        provider,
        model,
        message.resolution,
        capabilities,
    )


def upscales(request: Request, image: Any, made: Origin) -> list[dict[str, Any]]:
    """The presets of the image's model larger than the image (the same shape, wider and
    taller), smallest first, each ``{id, label, width, height, units}``; [] when the
    model has none or cannot take an image as input."""
    caps = made.capabilities
    if caps is None or Mode.IMAGE_TO_IMAGE not in caps.modes:
        return []
    units = request.find_service(IUnitPrices).costs(request.db).get((made.provider, caps.model), {})
    found = []
    for preset in caps.resolutions:
        described = resolution_json(caps, preset)
        width, height = described["width"], described["height"]
        if width is None or height is None:
            continue
        # The same shape (an upscale never crops), and more pixels on both sides.
        same_shape = abs(width * image.height - height * image.width) <= 0.01 * width * image.height
        if same_shape and width > image.width and height > image.height:
            found.append(described | {"units": units.get(preset)})
    return sorted(found, key=lambda r: (r["width"] * r["height"], r["id"]))


# --- vary and upscale: submissions like any other ---------------------------------------------


def _from_image(
    request: Request,
    user_id: int,
    image: GenerationImage,
    made: Origin,
    prompt: str,
    resolution: str,
    idempotency_key: str | None,
) -> Generation:
    """One image made from ``image`` by the model that made it (``made``), in its conversation:
    checked, held and charged as any submission."""
    body = {
        "mode": str(Mode.IMAGE_TO_IMAGE),
        "prompt": prompt,
        "resolution": resolution,
        "batch_size": 1,
        "provider": made.provider,
        "model": made.model,
        "input_image_ids": [str(image.id)],
    }
    generation, _created = generations.submit_generation(
        request, user_id, made.conversation_id, body, idempotency_key
    )
    return generation


def vary(
    request: Request, user_id: int, image_id: Any, idempotency_key: str | None = None
) -> Generation:
    """A new generation in the image's conversation: the same prompt and preset, this image as
    its input. Checked, held and charged as any submission."""
    image = owned_image(request.db, user_id, image_id)
    made = origin(request, image)
    return _from_image(request, user_id, image, made, made.prompt, made.resolution, idempotency_key)


def upscale(
    request: Request,
    user_id: int,
    image_id: Any,
    resolution: Any,
    idempotency_key: str | None = None,
) -> Generation:
    """A new generation of the image at ``resolution``, a larger preset of the model that made
    it, with the image as its input; ValidationError naming ``resolution`` otherwise."""
    image = owned_image(request.db, user_id, image_id)
    made = origin(request, image)
    offered = upscales(request, image, made)
    if not isinstance(resolution, str) or not resolution:
        raise ValidationError(
            _("Choose the size to upscale to (resolution)."), fields={"resolution": "required"}
        )
    if resolution not in {preset["id"] for preset in offered}:
        larger = ", ".join(preset["id"] for preset in offered) or "none"
        raise ValidationError(
            _(
                "'${resolution}' is not a larger size of ${model} than this ${width} x ${height} "
                "px image (larger sizes: ${larger}).",
                mapping={
                    "resolution": resolution[:64],
                    "model": made.model,
                    "width": image.width,
                    "height": image.height,
                    "larger": larger,
                },
            ),
            fields={"resolution": "invalid"},
        )
    prompt = UPSCALE_INSTRUCTION + made.prompt
    return _from_image(
        request, user_id, image, made, prompt[:PROMPT_MAX_CHARS], resolution, idempotency_key
    )


# --- favourite, delete, share -------------------------------------------------------------------


def set_favorite(db: Session, user_id: int, image_id: Any, favorite: bool) -> None:
    image = owned_image(db, user_id, image_id, lock=True)
    image.favorite = favorite
    db.flush()


def delete_image(request: Request, user_id: int, image_id: Any) -> None:
    """Delete one image: its row now, its original and thumbnail once that commits (then its
    media and share page are 404). The units it cost are not given back."""
    db: Session = request.db
    image = owned_image(db, user_id, image_id, lock=True)
    keys = [image.storage_key, *([image.thumb_key] if image.thumb_key else [])]
    db.delete(image)
    db.flush()
    delete_after_commit(request, keys)


def share(db: Session, user_id: int, image_id: Any, show_prompt: bool | None) -> GenerationImage:
    """Share the image on its public page: a new random token unless it is shared already;
    ``show_prompt`` (when given) says whether the page shows the prompt."""
    image = owned_image(db, user_id, image_id, lock=True)
    if image.share_token is None:
        image.share_token = secrets.token_urlsafe(SHARE_TOKEN_BYTES)
        image.share_show_prompt = bool(show_prompt)
    elif show_prompt is not None:
        image.share_show_prompt = show_prompt
    db.flush()
    return image


def unshare(db: Session, user_id: int, image_id: Any) -> None:
    """Revoke the image's public page: its link answers 404 from now on (a later share makes a
    new link; the old one never comes back)."""
    image = owned_image(db, user_id, image_id, lock=True)
    image.share_token = None
    image.share_show_prompt = False
    db.flush()


@dataclasses.dataclass(frozen=True)
class SharedImage:
    image: GenerationImage
    prompt: str | None


def shared(db: Session, token: str) -> SharedImage:
    """The image shared under ``token``, with its prompt only if the owner chose to show it;
    NotFound for anything else (revoked, unknown, malformed)."""
    if not token or len(token) > 64:
        raise _not_found()
    image = db.scalar(sa.select(GenerationImage).where(GenerationImage.share_token == token))
    if image is None:
        raise _not_found()
    prompt = image.generation.message.prompt if image.share_show_prompt else None
    return SharedImage(image, prompt)
