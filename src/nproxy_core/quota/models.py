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
    __tablename__ = "quota_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(
        sa.ForeignKey("billing_cycles.id", ondelete="CASCADE"), index=True
    )
    amount: Mapped[int]
    #: How many of ``amount`` were consumed when the hold settled (successful images).
    consumed: Mapped[int] = mapped_column(default=0)
    state: Mapped[HoldState] = mapped_column(
        str_enum(HoldState, "hold_state"), default=HoldState.HELD
    )
    #: What the hold is for, e.g. a generation id, so a sweeper can match it to its job.
    reference: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]

    cycle: Mapped[BillingCycle] = relationship()

    __table_args__ = (
        sa.CheckConstraint("amount > 0 AND consumed >= 0 AND consumed <= amount", name="amounts"),
        sa.Index("ix_quota_holds_state_created_at", "state", "created_at"),
    )

    def __repr__(self) -> str:
        return f"<QuotaHold {self.id} {self.state} {self.amount}>"
