"""The library: every image of a user, newest first, paged by a keyset cursor that survives
new images arriving while someone scrolls (``GET /api/v1/images``); searched by any part of
the prompt (``q``, a trigram index on PostgreSQL) and filtered to favourites (``favorite``)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.errors import ValidationError
from nproxy_core.generation.models import (
    Generation,
    GenerationImage,
    Message,
)
from nproxy_core.i18n import _


@dataclasses.dataclass(frozen=True)
class LibraryImage:
    id: uuid.UUID
    generation_id: uuid.UUID
    conversation_id: uuid.UUID
    prompt: str
    mode: str
    resolution: str
    created_at: dt.datetime
    width: int
    height: int
    provider: str | None = None
    model: str | None = None
    favorite: bool = False
    share_token: str | None = None
    share_show_prompt: bool = False


#: The longest search the library takes, in characters.
MAX_QUERY = 200


def search_text(value: str | None) -> str | None:
    """The words to look for in prompts (``q``), trimmed; None for no search."""
    if value is None or not value.strip():
        return None
    text = " ".join(value.split())
    if len(text) > MAX_QUERY:
        raise ValidationError(
            _(
                "The search is too long: at most ${max_query} characters.",
                mapping={"max_query": MAX_QUERY},
            ),
            fields={"q": "too_long"},
        )
    return text


def favorite_filter(value: str | None) -> bool | None:
    """``favorite=true`` (only favourites), ``false`` (only the others), or none."""
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ValidationError(_("favorite must be true or false."), fields={"favorite": "invalid"})


def _like_pattern(text: str) -> str:
    """``%text%`` with the text's own ``%``, ``_`` and ``\\`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _cursor(image: LibraryImage) -> str:
    raw = f"{image.created_at.isoformat()}|{image.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parse_cursor(value: str) -> tuple[dt.datetime, uuid.UUID]:
    problem = ValidationError(
        _("The library cursor is not one this server gave."), fields={"before": "invalid"}
    )
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        moment, _bar, image_id = raw.partition("|")
        return dt.datetime.fromisoformat(moment), uuid.UUID(image_id)
    except (ValueError, UnicodeDecodeError):
        raise problem from None


def _select() -> sa.Select[Any]:
    img, gen, msg = GenerationImage.__table__, Generation.__table__, Message.__table__
    return sa.select(
        img.c.id,
        img.c.generation_id,
        gen.c.conversation_id,
        msg.c.prompt,
        msg.c.mode,
        msg.c.resolution,
        img.c.created_at,
        img.c.width,
        img.c.height,
        img.c.provider,
        img.c.model,
        img.c.favorite,
        img.c.share_token,
        img.c.share_show_prompt,
    ).select_from(
        img.join(gen, gen.c.id == img.c.generation_id).join(msg, msg.c.id == gen.c.message_id)
    )


def library_image(db: Session, user_id: int, image_id: uuid.UUID) -> LibraryImage | None:
    """One image of the user as the library shows it, or None."""
    img = GenerationImage.__table__
    row = db.execute(_select().where(img.c.id == image_id, img.c.user_id == user_id)).first()
    return None if row is None else LibraryImage(**row._mapping)


def library_page(
    db: Session,
    user_id: int,
    before: str | None,
    limit: int,
    *,
    q: str | None = None,
    favorite: bool | None = None,
) -> tuple[list[LibraryImage], str | None]:
    """The user's generated images, newest first, after the cursor ``before``: a keyset page
    on (created_at, id), as fast on the thousandth page as on the first. ``q``: only images
    whose prompt holds these words (any case); ``favorite``: only favourites (True) or only
    the others (False)."""
    img, msg = GenerationImage.__table__, Message.__table__
    query = (
        _select()
        .where(img.c.user_id == user_id)
        .order_by(img.c.created_at.desc(), img.c.id.desc())
        .limit(limit + 1)
    )
    if q:
        query = query.where(msg.c.prompt.ilike(_like_pattern(q), escape="\\"))
    if favorite is not None:
        query = query.where(img.c.favorite.is_(favorite))
    if before:
        moment, image_id = _parse_cursor(before)
        query = query.where(sa.tuple_(img.c.created_at, img.c.id) < sa.tuple_(moment, image_id))
    rows = [LibraryImage(**row._mapping) for row in db.execute(query)]
    page = rows[:limit]
    return page, (_cursor(page[-1]) if len(rows) > limit else None)
