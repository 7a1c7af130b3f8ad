"""Uploads: images a user sent as inputs for image-to-image generations."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, JSONType, utcnow


class Upload(Base):
    """One checked image. The bytes live in storage under ``storage_key``; the id is random so
    it can appear in URLs (``/media/{id}``) without being guessable."""

    __tablename__ = "uploads"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    mime: Mapped[str] = mapped_column(sa.String(32))
    width: Mapped[int]
    height: Mapped[int]
    size_bytes: Mapped[int]
    # Lets later features spot the same image sent twice without reading storage.
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: When a generation first took it as an input. Uploads never used within a day are
    #: deleted, row and object, by a periodic job.
    used_at: Mapped[dt.datetime | None]
    #: For a copy of a generated image: the provider and model that made it and what that
    #: provider wants back with it (``GeneratedImage.continuation``), given back only to them.
    origin_provider: Mapped[str | None] = mapped_column(sa.String(64))
    origin_model: Mapped[str | None] = mapped_column(sa.String(128))
    continuation: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (sa.Index("ix_uploads_used_at_created_at", "used_at", "created_at"),)

    @property
    def extension(self) -> str:
        return self.storage_key.rsplit(".", 1)[-1]

    def __repr__(self) -> str:
        return f"<Upload {self.id} user={self.user_id}>"
