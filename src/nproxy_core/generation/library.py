"""The library: every image of a user, newest first, paged by a keyset cursor that survives
new images arriving while someone scrolls (``GET /api/v1/images``)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.errors import ValidationError
from nproxy_core.generation.models import (
    Generation,
    GenerationImage,
    Message,
)


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


def _cursor(image: LibraryImage) -> str:
    raw = f"{image.created_at.isoformat()}|{image.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parse_cursor(value: str) -> tuple[dt.datetime, uuid.UUID]:
    problem = ValidationError(
        "The library cursor is not one this server gave.", fields={"before": "invalid"}
    )
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        moment, _, image_id = raw.partition("|")
        return dt.datetime.fromisoformat(moment), uuid.UUID(image_id)
    except (ValueError, UnicodeDecodeError):
        raise problem from None


def library_page(
    db: Session, user_id: int, before: str | None, limit: int
) -> tuple[list[LibraryImage], str | None]:
    """The user's generated images, newest first, after the cursor ``before``: a keyset page
    on (created_at, id), as fast on the thousandth page as on the first."""
    img, gen, msg = GenerationImage.__table__, Generation.__table__, Message.__table__
    query = (
        sa.select(
            img.c.id,
            img.c.generation_id,
            gen.c.conversation_id,
            msg.c.prompt,
            msg.c.mode,
            msg.c.resolution,
            img.c.created_at,
            img.c.width,
            img.c.height,
        )
        .select_from(
            img.join(gen, gen.c.id == img.c.generation_id).join(msg, msg.c.id == gen.c.message_id)
        )
        .where(img.c.user_id == user_id)
        .order_by(img.c.created_at.desc(), img.c.id.desc())
        .limit(limit + 1)
    )
    if before:
        moment, image_id = _parse_cursor(before)
        query = query.where(sa.tuple_(img.c.created_at, img.c.id) < sa.tuple_(moment, image_id))
    rows = [LibraryImage(**row._mapping) for row in db.execute(query)]
    page = rows[:limit]
    return page, (_cursor(page[-1]) if len(rows) > limit else None)
