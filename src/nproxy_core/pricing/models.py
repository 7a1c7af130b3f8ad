"""An admin's unit price for one (provider, model, resolution): it wins over the default."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, utcnow


class UnitPrice(Base):
    __tablename__ = "unit_prices"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(64))
    model: Mapped[str] = mapped_column(sa.String(128))
    resolution: Mapped[str] = mapped_column(sa.String(64))
    units: Mapped[int]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: Who set it, as the audit log names actors.
    updated_by: Mapped[str | None] = mapped_column(sa.String(320))

    __table_args__ = (
        sa.UniqueConstraint(
            "provider", "model", "resolution", name="uq_unit_prices_provider_model_resolution"
        ),
        sa.CheckConstraint("units > 0", name="units_positive"),
    )

    def __repr__(self) -> str:
        return f"<UnitPrice {self.provider}:{self.model}:{self.resolution}={self.units}>"
