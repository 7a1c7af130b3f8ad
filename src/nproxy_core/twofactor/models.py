"""Two-factor login: an account's TOTP secret (encrypted) and its single-use recovery codes."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, utcnow


class TotpCredential(Base):
    """The authenticator app of one account (RFC 6238: SHA-1, 6 digits, 30-second steps).

    A row with ``confirmed_at`` None is an enrolment in progress: its secret was shown but no
    code from it has been typed yet, so it protects nothing. ``last_used_step`` is the time step
    of the last code accepted: a code is accepted only for a later step, by one conditional
    UPDATE, so a code (or an older one) never works twice, even from two logins at once.
    """

    __tablename__ = "totp_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    #: The base32 secret as a Fernet token (keypool's secret box, under ``nproxy.secret``).
    secret_encrypted: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None]
    last_used_step: Mapped[int | None] = mapped_column(sa.BigInteger)

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


class RecoveryCode(Base):
    """One of the ten codes shown once at enrolment, for a lost phone. Only its SHA-256 is
    stored (80 random bits: a copy of the database opens nothing); ``used_at`` is set by the
    one conditional UPDATE that accepts it."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    used_at: Mapped[dt.datetime | None]

    __table_args__ = (sa.UniqueConstraint("user_id", "code_hash"),)
