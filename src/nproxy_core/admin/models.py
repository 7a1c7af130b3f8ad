"""Hourly summaries behind the admin's charts and health numbers.

A day of raw attempts and images is too many rows to aggregate on every page view (100,000
attempts a day is 60 ms per pass on this machine; the overview needs several), so each closed
hour is summed once by a periodic job (:mod:`.rollups`) and the pages read 24 small rows plus
the last two hours raw. ``stat_hours`` says which hours are summed: an hour without its row is
read raw, so a stopped job costs speed, never correctness.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, JSONType, utcnow


class StatHour(Base):
    """An hour whose attempts and images are summed in the two tables below."""

    __tablename__ = "stat_hours"

    hour: Mapped[dt.datetime] = mapped_column(primary_key=True)
    rolled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class KeyAttemptHour(Base):
    """One key's attempts in one hour: counts by outcome, and a latency histogram."""

    __tablename__ = "key_attempt_hours"

    hour: Mapped[dt.datetime] = mapped_column(primary_key=True)
    key_id: Mapped[int] = mapped_column(
        sa.ForeignKey("provider_keys.id", ondelete="CASCADE"), primary_key=True
    )
    #: ``{"success": 120, "retryable": 3, ...}``
    outcomes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: Latency histogram, ``{bucket: count}`` (see :mod:`.histogram`).
    latencies: Mapped[dict[str, Any]] = mapped_column(JSONType)


class ImageHour(Base):
    """Images made in one hour, and images failed by class (by their job's finish time)."""

    __tablename__ = "image_hours"

    hour: Mapped[dt.datetime] = mapped_column(primary_key=True)
    made: Mapped[int] = mapped_column(default=0)
    #: ``{"content_policy": 2, "invalid_input": 0, "provider_unavailable": 5}``
    failed: Mapped[dict[str, Any]] = mapped_column(JSONType)
