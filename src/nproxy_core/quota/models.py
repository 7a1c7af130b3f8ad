"""Quota holds: requests reserved for a generation in flight, until it settles or is released."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nproxy_core.billing.models import BillingCycle
from nproxy_core.db import Base, str_enum, utcnow


class HoldState(enum.StrEnum):
    HELD = "held"
    SETTLED = "settled"
    RELEASED = "released"


class QuotaHold(Base):
    """Units held for one generation: ``cycle_units`` of them on a cycle, the rest on pack
    balances (:class:`QuotaHoldPack`, only when the cycle did not cover it all)."""

    __tablename__ = "quota_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The cycle drawn on; None when the hold is on packs only.
    cycle_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("billing_cycles.id", ondelete="CASCADE"), index=True
    )
    #: Units held in all: images times ``unit_cost``.
    amount: Mapped[int]
    #: Units one image costs; a settled image consumes this many.
    unit_cost: Mapped[int] = mapped_column(default=1, server_default="1")
    #: Units of ``amount`` held on the cycle; the rest are on packs.
    cycle_units: Mapped[int]
    #: How many units of ``amount`` were consumed when the hold settled (successful images).
    consumed: Mapped[int] = mapped_column(default=0)
    state: Mapped[HoldState] = mapped_column(
        str_enum(HoldState, "hold_state"), default=HoldState.HELD
    )
    #: What the hold is for, e.g. a generation id, so a sweeper can match it to its job.
    reference: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]

    cycle: Mapped[BillingCycle | None] = relationship()
    packs: Mapped[list[QuotaHoldPack]] = relationship(
        order_by="QuotaHoldPack.balance_id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        sa.CheckConstraint("amount > 0 AND consumed >= 0 AND consumed <= amount", name="amounts"),
        sa.CheckConstraint(
            "unit_cost > 0 AND cycle_units >= 0 AND cycle_units <= amount", name="parts"
        ),
        sa.Index("ix_quota_holds_state_created_at", "state", "created_at"),
    )

    def __repr__(self) -> str:
        return f"<QuotaHold {self.id} {self.state} {self.amount}>"


class QuotaHoldPack(Base):
    """The part of a hold drawn on one pack balance."""

    __tablename__ = "quota_hold_packs"

    hold_id: Mapped[int] = mapped_column(
        sa.ForeignKey("quota_holds.id", ondelete="CASCADE"), primary_key=True
    )
    balance_id: Mapped[int] = mapped_column(
        sa.ForeignKey("pack_balances.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    amount: Mapped[int]
    consumed: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        sa.CheckConstraint("amount > 0 AND consumed >= 0 AND consumed <= amount", name="amounts"),
    )
