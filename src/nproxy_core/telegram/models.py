"""Telegram admins (the allowlist), pending pairings, and the outbox of alert messages."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, utcnow


class TelegramAdmin(Base):
    """A Telegram account allowed to use the admin bot; revoking deletes the row."""

    __tablename__ = "telegram_admins"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_id: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    chat_id: Mapped[int] = mapped_column(sa.BigInteger)
    username: Mapped[str | None] = mapped_column(sa.String(64))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    paired_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    paired_by: Mapped[str] = mapped_column(sa.String(320))


class TelegramPairing(Base):
    """A pairing code given to a Telegram user not on the allowlist.

    The code is single use (``completed_at``) and expires; the bot tells the user once the
    pairing completes (``notified_at``).
    """

    __tablename__ = "telegram_pairings"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(8), unique=True)
    telegram_id: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    chat_id: Mapped[int] = mapped_column(sa.BigInteger)
    username: Mapped[str | None] = mapped_column(sa.String(64))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    completed_at: Mapped[dt.datetime | None]
    notified_at: Mapped[dt.datetime | None]


class AlertMessage(Base):
    """A Telegram message waiting to be sent (the outbox): a send failing or Telegram being
    down leaves it here, due again later, so nothing raised during an outage is lost."""

    __tablename__ = "alert_messages"
    __table_args__ = (sa.Index("ix_alert_messages_due", "sent_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(sa.BigInteger)
    text: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(255))
