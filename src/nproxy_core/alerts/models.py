"""Admin alerts as rows: one per occurrence of a condition, from first seen until it clears."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, str_enum, utcnow


class AlertState(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Alert(Base):
    """One occurrence of a condition (kind + subject) from first seen until it clears."""

    __tablename__ = "alerts"
    __table_args__ = (
        # At most one open alert per condition, whatever the number of processes raising it.
        sa.Index(
            "uq_alerts_open_kind_subject",
            "kind",
            "subject",
            unique=True,
            postgresql_where=sa.text("state = 'open'"),
            sqlite_where=sa.text("state = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    subject: Mapped[str] = mapped_column(sa.String(200))
    state: Mapped[AlertState] = mapped_column(
        str_enum(AlertState, "alert_state"), default=AlertState.OPEN, index=True
    )
    detail: Mapped[str] = mapped_column(sa.Text)
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    count: Mapped[int] = mapped_column(default=1)
    #: ``count`` when the last message went out: repeats since are reported in the next one.
    sent_count: Mapped[int] = mapped_column(default=0)
    last_sent_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
