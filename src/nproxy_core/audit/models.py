"""Audit rows: who did what, from where, to what, with the before and after."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, JSONType, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    # The actor as people know it (an email, a Telegram handle, "console"), and the user row
    # behind it when there is one.
    actor: Mapped[str] = mapped_column(sa.String(320))
    actor_user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    surface: Mapped[str] = mapped_column(sa.String(16))
    action: Mapped[str] = mapped_column(sa.String(64))
    target_type: Mapped[str] = mapped_column(sa.String(64))
    target_id: Mapped[str | None] = mapped_column(sa.String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (
        sa.CheckConstraint("surface IN ('web', 'telegram', 'cli', 'system')", name="surface"),
        # The audit page: newest first (by id), filtered by actor, action or target.
        sa.Index("ix_audit_entries_target", "target_type", "target_id", "id"),
        sa.Index("ix_audit_entries_actor_id", "actor", "id"),
        sa.Index("ix_audit_entries_action_id", "action", "id"),
    )
