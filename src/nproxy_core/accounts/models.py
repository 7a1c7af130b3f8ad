"""Accounts: users, their sessions, and the single-use tokens sent to them by email."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from nproxy_core.db import Base, str_enum, utcnow


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Normalised (trimmed, lower-cased) before it is stored; unique at the database. None for
    # an account made by the customer Telegram bot until its owner adds one (DESIGN 4.14).
    email: Mapped[str | None] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"), default=Role.USER)
    is_blocked: Mapped[bool] = mapped_column(default=False)
    # Bumped when the password changes: every other session stops being valid.
    session_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]
    #: When the owner proved the address receives mail (a link sent to it was opened); None
    #: until then, and again once the address changes. The free plan asks for it (DESIGN 4.12).
    email_verified_at: Mapped[dt.datetime | None]
    #: The language the owner chose (``en``, ``ru``, ``uz``), on the web's picker or the customer
    #: bot's /language; None until then, when each request's own hints decide (DESIGN 4.15).
    language: Mapped[str | None] = mapped_column(sa.String(8))

    reset_tokens: Mapped[list[PasswordResetToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        # The admin's search by any part of an email (PostgreSQL's trigram index serves
        # ILIKE '%part%'; the migration makes it on PostgreSQL only).
        sa.Index(
            "ix_users_email_trgm",
            "email",
            postgresql_using="gin",
            postgresql_ops={"email": "gin_trgm_ops"},
        ),
    )

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @validates("email")
    def _address_change_clears_verification(self, key: str, address: str) -> str:
        # Whatever surface changes the address, the proof was about the old one.
        if self.email is not None and address != self.email:
            self.email_verified_at = None
        return address

    def __repr__(self) -> str:
        return f"<User {self.id}>"


class UserSession(Base):
    """One logged-in browser. The cookie carries a random token; only its SHA-256 is stored.

    Logging out ends the row, so a copied cookie stops working at once. Rows are kept for a
    while after they end: the addresses a user logged in from are what login throttling
    recognises as theirs (DESIGN 9).
    """

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]
    #: The client's address at login (IPv6 at most 45 characters).
    ip: Mapped[str] = mapped_column(sa.String(45))
    user_agent: Mapped[str] = mapped_column(sa.String(200), default="")

    __table_args__ = (sa.Index("ix_user_sessions_user_id_ip", "user_id", "ip"),)

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


class SingleUseToken:
    """The columns of a token sent by email, good once and for a while (password reset, email
    verification). Only its SHA-256 is stored: the token itself is in the email alone, so a
    copy of the database opens nothing. :mod:`nproxy_core.accounts.services` issues and claims
    them (``issue_token``, ``claim_token``)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class PasswordResetToken(SingleUseToken, Base):
    __tablename__ = "password_reset_tokens"

    user: Mapped[User] = relationship(back_populates="reset_tokens")


class EmailVerificationToken(SingleUseToken, Base):
    """A link proving that ``email`` receives mail. It names the address it was sent to: once
    the account's address changes, a link sent to the old one proves nothing."""

    __tablename__ = "email_verification_tokens"

    email: Mapped[str] = mapped_column(sa.String(254))

    user: Mapped[User] = relationship()
