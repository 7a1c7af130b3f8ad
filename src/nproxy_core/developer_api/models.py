"""Developer API rows: the API keys of a user, and which key submitted which generation."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, utcnow


class ApiKey(Base):
    """A Bearer key of one user. Only a keyed hash of the secret is stored, with a short
    prefix that lets the owner tell keys apart (and lets a lookup find the row)."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    #: The secret's first characters (``npx_`` and 8 more), shown in lists.
    prefix: Mapped[str] = mapped_column(sa.String(16), index=True)
    #: HMAC-SHA256 of the whole secret, hex; keyed with a key derived from ``nproxy.secret``.
    secret_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    #: The conversation the key's generations are filed under (made on first use).
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="SET NULL")
    )

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None

    def __repr__(self) -> str:
        return f"<ApiKey {self.prefix}… user={self.user_id}>"


class ApiGeneration(Base):
    """A generation submitted through the developer API: by which key, with which request
    (its fingerprint tells a retried request from a different one under the same
    ``Idempotency-Key``)."""

    __tablename__ = "api_generations"

    generation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True
    )
    api_key_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        # Usage per day and unfinished jobs of a key.
        sa.Index("ix_api_generations_api_key_id_created_at", "api_key_id", "created_at"),
    )
