"""Keyset pagination for the admin lists: "the next page" starts after the last row shown,
by an index, so page 1000 costs what page 1 costs (OFFSET would read and drop every earlier
row). Lists are newest first; a cursor is the (time, id) or the id of the last row shown.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.errors import ValidationError

T = TypeVar("T")

PAGE_SIZE = 50


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the cursor of the next one (None on the last page)."""

    items: list[T]
    next_cursor: str | None


def _bad_cursor() -> ValidationError:
    return ValidationError(
        "The page link is damaged or out of date. Start again from the first page.",
        fields={"after": "invalid"},
    )


def encode(*values: Any) -> str:
    parts = [v.isoformat() if isinstance(v, dt.datetime) else str(v) for v in values]
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def decode(cursor: str, *kinds: type) -> tuple[Any, ...]:
    """The values of a cursor made by :func:`encode`, each parsed as ``kinds`` says."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = text.split("|")
        if len(parts) != len(kinds):
            raise ValueError(cursor)
        values: list[Any] = []
        for kind, part in zip(kinds, parts, strict=True):
            if kind is dt.datetime:
                moment = dt.datetime.fromisoformat(part)
                if moment.tzinfo is None:
                    raise ValueError(part)
                values.append(moment)
            elif kind is uuid.UUID:
                values.append(uuid.UUID(part))
            else:
                values.append(kind(part))
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise _bad_cursor() from None
    return tuple(values)


def page_by_time(
    db: Session,
    query: sa.Select[Any],
    time_column: Any,
    id_column: Any,
    cursor: str | None,
    *,
    id_kind: type = int,
    size: int = PAGE_SIZE,
) -> Page[Any]:
    """Rows of ``query`` newest first by ``(time_column, id_column)``, after ``cursor``."""
    if cursor:
        moment, last_id = decode(cursor, dt.datetime, id_kind)
        query = query.where(sa.tuple_(time_column, id_column) < sa.tuple_(moment, last_id))
    query = query.add_columns(time_column.label("cursor_time"), id_column.label("cursor_id"))
    rows = list(
        db.execute(query.order_by(time_column.desc(), id_column.desc()).limit(size + 1)).all()
    )
    return _page(rows, size, lambda row: encode(row.cursor_time, row.cursor_id))


def page_by_id(
    db: Session, query: sa.Select[Any], id_column: Any, cursor: str | None, *, size: int = PAGE_SIZE
) -> Page[Any]:
    """Rows of ``query`` newest first by ``id_column`` (an ever-growing integer)."""
    if cursor:
        (last_id,) = decode(cursor, int)
        query = query.where(id_column < last_id)
    query = query.add_columns(id_column.label("cursor_id"))
    rows = list(db.execute(query.order_by(id_column.desc()).limit(size + 1)).all())
    return _page(rows, size, lambda row: encode(row.cursor_id))


def _page(rows: Sequence[Any], size: int, cursor_of: Any) -> Page[Any]:
    if len(rows) <= size:
        return Page(list(rows), None)
    shown = list(rows[:size])
    return Page(shown, cursor_of(shown[-1]))
