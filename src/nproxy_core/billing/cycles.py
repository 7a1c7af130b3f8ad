"""Billing-cycle dates as plain functions: calendar months with the day clamped, and where a
newly paid cycle goes among the user's existing ones (DESIGN 4.2)."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """``moment`` plus calendar months, the day clamped to the month's end (Jan 31 -> Feb 28)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def is_current(starts_at: dt.datetime, ends_at: dt.datetime, now: dt.datetime) -> bool:
    """Access runs from ``starts_at`` up to, not including, ``ends_at``: no grace period."""
    return starts_at <= now < ends_at


@dataclass(frozen=True)
class Span:
    """A cycle's dates, its length in months, and whether its quota is all spoken for."""

    starts_at: dt.datetime
    ends_at: dt.datetime
    months: int
    exhausted: bool = False


def schedule_paid_cycle(
    now: dt.datetime, cycles: Sequence[Span], months: int
) -> tuple[list[Span], Span]:
    """Place a cycle paid for at ``now`` among the user's cycles.

    Returns the cycles with their (possibly moved) dates, in the order given, and the new
    cycle. The new cycle starts at the later of ``now`` and the end of the latest cycle, so
    renewing early loses no days. If the current cycle's quota is used up, it ends at ``now``
    and the cycles queued after it move forward to follow on without a gap, so the payment
    buys access at once and the queued cycles lose no days either.
    """
    result = list(cycles)
    order = sorted(range(len(result)), key=lambda i: result[i].starts_at)
    current = next(
        (i for i in order if is_current(result[i].starts_at, result[i].ends_at, now)), None
    )
    if current is not None and result[current].exhausted:
        result[current] = replace(result[current], ends_at=now)
        cursor = now
        for i in order:
            span = result[i]
            # A queued cycle keeps its length and follows the previous one; one cut to nothing
            # by a refund stays cut.
            if span.starts_at > now and span.ends_at > span.starts_at:
                start = cursor
                result[i] = replace(span, starts_at=start, ends_at=add_months(start, span.months))
                cursor = result[i].ends_at
    latest_end = max((span.ends_at for span in result), default=now)
    start = max(now, latest_end)
    return result, Span(starts_at=start, ends_at=add_months(start, months), months=months)
