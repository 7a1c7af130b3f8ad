"""Referral codes, who referred whom, and the rewards paid for it (DESIGN 4.14)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, utcnow


class ReferralCode(Base):
    """Every account's code, made the first time it is asked for."""

    __tablename__ = "referral_codes"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(sa.String(16), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Referral(Base):
    """An account made through another's link: one row per referred account, never changed."""

    __tablename__ = "referrals"

    referred_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    referrer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    #: Where the link was followed: ``web`` or ``telegram``.
    via: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.Index("ix_referrals_created_at_referred_id", "created_at", "referred_id"),
        sa.Index("ix_referrals_referrer_id", "referrer_id"),
    )


class ReferralReward(Base):
    """The units a referrer got for a referred account's first paid payment: once per
    referred account (unique), once per payment (unique); a refund of that payment takes the
    unused units back (``clawed_back_at``)."""

    __tablename__ = "referral_rewards"

    id: Mapped[int] = mapped_column(primary_key=True)
    referrer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    referred_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    payment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="SET NULL"), unique=True
    )
    balance_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("pack_balances.id", ondelete="SET NULL")
    )
    units: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    clawed_back_at: Mapped[dt.datetime | None]

    __table_args__ = (sa.Index("ix_referral_rewards_referrer_id", "referrer_id"),)
