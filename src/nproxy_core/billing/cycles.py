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


def current_index(now: dt.datetime, cycles: Sequence[Span]) -> int | None:
    """The index of the cycle running at ``now`` (the earliest such), or None."""
    order = sorted(range(len(cycles)), key=lambda i: cycles[i].starts_at)
    return next((i for i in order if is_current(cycles[i].starts_at, cycles[i].ends_at, now)), None)


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
    current = current_index(now, result)
    if current is not None and result[current].exhausted:
        result[current] = replace(result[current], ends_at=now)
        _follow(result, now, now)
    latest_end = max((span.ends_at for span in result), default=now)
    start = max(now, latest_end)
    return result, Span(starts_at=start, ends_at=add_months(start, months), months=months)


def schedule_upgrade(
    now: dt.datetime, cycles: Sequence[Span], current: int, months: int
) -> tuple[list[Span], Span]:
    """Place a cycle of a higher-priced plan bought at ``now`` while ``cycles[current]`` runs.

    The running cycle ends at ``now`` and the new one starts then; the cycles queued after the
    running one (renewals bought early) keep their lengths and follow the new cycle, so they
    lose no days. Returns the cycles with their (possibly moved) dates, in the order given, and
    the new cycle.
    """
    result = list(cycles)
    result[current] = replace(result[current], ends_at=now)
    new = Span(starts_at=now, ends_at=add_months(now, months), months=months)
    _follow(result, now, new.ends_at)
    return result, new


def _follow(spans: list[Span], after: dt.datetime, cursor: dt.datetime) -> None:
    """Move the cycles that start after ``after`` to follow each other from ``cursor`` on, in
    their order, each keeping its length; one cut to nothing by a refund stays cut."""
    for i in sorted(range(len(spans)), key=lambda i: spans[i].starts_at):
        span = spans[i]
        if span.starts_at > after and span.ends_at > span.starts_at:
            spans[i] = replace(span, starts_at=cursor, ends_at=add_months(cursor, span.months))
            cursor = spans[i].ends_at


#: Public name of :func:`_follow`, for the refund that closes the gap it leaves.
follow = _follow
