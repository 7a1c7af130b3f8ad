"""The customer bot's rows: which Telegram user is which account (with their bot settings),
the single-use links between Telegram and the web, and the outbox of results to deliver."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nproxy_core.accounts.models import SingleUseToken, User
from nproxy_core.db import Base, utcnow


class TelegramCustomer(Base):
    """One account's Telegram identity: one Telegram id belongs to at most one account, and
    one account has at most one Telegram id (both unique at the database)."""

    __tablename__ = "telegram_customers"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    telegram_id: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    chat_id: Mapped[int] = mapped_column(sa.BigInteger)
    username: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: The language chosen with /language (texts are English until the languages issue).
    language: Mapped[str] = mapped_column(sa.String(8), default="en")
    #: The user's generation settings (/settings); None: the default model and resolution.
    provider: Mapped[str | None] = mapped_column(sa.String(64))
    model: Mapped[str | None] = mapped_column(sa.String(128))
    resolution: Mapped[str | None] = mapped_column(sa.String(32))
    batch_size: Mapped[int] = mapped_column(default=1)

    user: Mapped[User] = relationship()


class TelegramLinkToken(SingleUseToken, Base):
    """A deep link ``https://t.me/{bot}?start=link_{token}`` made on the account page: the
    Telegram user who opens it within 15 minutes becomes this account's Telegram id."""

    __tablename__ = "telegram_link_tokens"

    user: Mapped[User] = relationship()


class TelegramLoginToken(SingleUseToken, Base):
    """A web login link sent by ``/web``: good once, for 15 minutes."""

    __tablename__ = "telegram_login_tokens"

    user: Mapped[User] = relationship()


class TelegramDelivery(Base):
    """A generation asked for in Telegram whose result the bot process sends when it is done.

    Written in the submission's transaction, marked sent only after Telegram accepted the
    result: a restart of the bot process, an outage or a 429 delays a result, never loses it.
    Results of one chat go out in the order they were asked for.
    """

    __tablename__ = "telegram_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("generations.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(sa.BigInteger)
    #: The "working on it" message, edited when the result is sent.
    status_message_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(255))

    __table_args__ = (sa.Index("ix_telegram_deliveries_pending", "sent_at", "chat_id", "id"),)
