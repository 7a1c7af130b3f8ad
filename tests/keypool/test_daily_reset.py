"""A per-day quota rests until the provider's daily reset: the next local midnight of its zone
(for Gemini, America/Los_Angeles), also on the 23- and 25-hour days of a daylight-saving change."""

from __future__ import annotations

import datetime as dt

import pytest

from nproxy_core.plugins import next_midnight

PACIFIC = "America/Los_Angeles"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        # An ordinary winter evening, PST (UTC-8): midnight is 08:00 UTC.
        (utc(2026, 1, 15, 3, 0), utc(2026, 1, 15, 8, 0)),
        # The evening before clocks spring forward (8 March 2026, 02:00 PST): still PST.
        (utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 8, 0)),
        # The 23-hour day itself, after the change (PDT, UTC-7): midnight is 07:00 UTC.
        (utc(2026, 3, 8, 19, 0), utc(2026, 3, 9, 7, 0)),
        # Exactly at midnight: the reset that just happened is not the next one.
        (utc(2026, 3, 8, 8, 0), utc(2026, 3, 9, 7, 0)),
        # The evening before clocks fall back (1 November 2026, 02:00 PDT): still PDT.
        (utc(2026, 11, 1, 6, 59), utc(2026, 11, 1, 7, 0)),
        # The 25-hour day, before and after the repeated hour: midnight is 08:00 UTC (PST).
        (utc(2026, 11, 1, 7, 30), utc(2026, 11, 2, 8, 0)),
        (utc(2026, 11, 1, 10, 30), utc(2026, 11, 2, 8, 0)),
    ],
)
def test_the_daily_quota_resets_at_the_next_pacific_midnight(now, reset):
    assert next_midnight(now, PACIFIC) == reset
    assert next_midnight(now, PACIFIC).tzinfo == dt.UTC


def test_a_day_of_the_change_is_23_or_25_hours_long_not_24():
    spring = next_midnight(utc(2026, 3, 8, 8, 0), PACIFIC) - utc(2026, 3, 8, 8, 0)
    autumn = next_midnight(utc(2026, 11, 1, 7, 0), PACIFIC) - utc(2026, 11, 1, 7, 0)
    assert (spring, autumn) == (dt.timedelta(hours=23), dt.timedelta(hours=25))


def test_the_instant_not_the_wall_clock_of_another_zone_decides():
    # 23:30 in Berlin on 14 January is 14:30 Pacific: the same Pacific day.
    berlin = dt.datetime(2026, 1, 14, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert next_midnight(berlin, PACIFIC) == utc(2026, 1, 15, 8, 0)


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        next_midnight(dt.datetime(2026, 1, 15, 3, 0), PACIFIC)
