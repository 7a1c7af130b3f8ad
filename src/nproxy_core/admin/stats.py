"""Numbers and time series for the admin's overview, health and key pages: the last hour and
the last 24 hours of key attempts and images.

Closed hours come from their summaries (:mod:`.models`, made by :mod:`.rollups`); everything
else (the current and previous hour, the partial hour at the start of the day, and any hour
not summed yet) is read raw and summed here, by the same code the summaries are made with. So
a page reads a few dozen summary rows and at most about three hours of raw rows, however big
the tables grow; and a database nobody summed (the embedded default without beat, a test) is
simply all raw.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from nproxy_core.admin import histogram
from nproxy_core.admin.models import ImageHour, KeyAttemptHour, StatHour
from nproxy_core.generation.models import Generation, GenerationImage, GenerationStatus, Message
from nproxy_core.keypool.errors import FAILURE_CODES
from nproxy_core.keypool.models import COUNTS_FOR_HEALTH, AttemptOutcome, KeyAttempt

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
#: Buckets of the 24-hour charts.
HOURS = 24

OUTCOMES = tuple(str(o) for o in AttemptOutcome)


def floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def hour_starts(now: dt.datetime) -> list[dt.datetime]:
    """The starts of the 24 hours of the charts, the current (partial) hour last."""
    current = floor_hour(now)
    return [current - HOUR * (HOURS - 1 - i) for i in range(HOURS)]


#: How long after an hour ends its rows may still be committing (an attempt records its time
#: just before its transaction commits, so a few seconds would do; this is generous).
LATE_MARGIN = dt.timedelta(minutes=10)


def live_from(now: dt.datetime) -> dt.datetime:
    """Hours from here on are always read raw: they may still receive rows."""
    return floor_hour(now - LATE_MARGIN)


def json_items(db: Session, column: Any) -> Any:
    """The (key, value) pairs of a JSON object column, as a table: ``jsonb_each_text`` on
    PostgreSQL, ``json_each`` on SQLite."""
    if db.get_bind().dialect.name == "postgresql":
        return sa.func.jsonb_each_text(column).table_valued("key", "value")
    return sa.func.json_each(column).table_valued("key", "value")


@dataclasses.dataclass(frozen=True)
class HourlySeries:
    """Counts per hour for the last 24 hours, one list per series, aligned with ``hours``."""

    hours: list[dt.datetime]
    series: dict[str, list[int]]

    def total(self, name: str) -> int:
        return sum(self.series.get(name, ()))


@dataclasses.dataclass
class Window:
    """Attempts over a window (one key's, or all keys'): by outcome, and their latencies —
    exact values where read raw, a histogram where they came from hourly summaries."""

    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)
    latencies: list[int] = dataclasses.field(default_factory=list)
    summarized: Counter[int] = dataclasses.field(default_factory=Counter)

    @property
    def attempts(self) -> int:
        return sum(self.outcomes.values())

    @property
    def successes(self) -> int:
        return self.outcomes[str(AttemptOutcome.SUCCESS)]

    @property
    def success_rate(self) -> float | None:
        return None if not self.attempts else self.successes / self.attempts

    def percentile(self, fraction: float) -> float | None:
        """Read once the window is complete (the values it needs are computed once)."""
        if not self.summarized:
            return histogram.exact_percentile(self._sorted, fraction)
        return histogram.estimate_percentile(self._merged, fraction)

    @functools.cached_property
    def _sorted(self) -> list[int]:
        return sorted(self.latencies)

    @functools.cached_property
    def _merged(self) -> Counter[int]:
        return self.summarized + histogram.histogram(self.latencies)

    @functools.cached_property
    def p50_ms(self) -> float | None:
        return self.percentile(0.5)

    @functools.cached_property
    def p95_ms(self) -> float | None:
        return self.percentile(0.95)

    @property
    def estimated(self) -> bool:
        """Whether the percentiles are read from a histogram (within 2.5 %)."""
        return bool(self.summarized)


@dataclasses.dataclass
class KeyStats:
    hour: Window = dataclasses.field(default_factory=Window)
    day: Window = dataclasses.field(default_factory=Window)


@dataclasses.dataclass
class ImageCounts:
    """Images made and failed (by class) in a window."""

    made: int = 0
    failed: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(FAILURE_CODES, 0)
    )

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def error_rate(self) -> float | None:
        tried = self.made + self.failed_total
        return None if not tried else self.failed_total / tried


# --- reading raw rows (shared with the summaries) ---------------------------------------------


def _placed(
    db: Session, column: Any, start: dt.datetime, since: dt.datetime
) -> tuple[Any, Any] | None:
    """SQL for (chart slot, in the last hour) of a timestamp, on PostgreSQL: thousands of raw
    rows then arrive as small integers, not timestamps to convert one by one in Python.
    None elsewhere (the embedded SQLite database is small; Python places its rows)."""
    if db.get_bind().dialect.name != "postgresql":
        return None
    moment = sa.type_coerce(column, sa.DateTime(timezone=True))
    origin = sa.literal(start, type_=sa.DateTime(timezone=True))
    # date_part (double precision), not EXTRACT (numeric since PostgreSQL 14): a third of
    # the time over thousands of rows, and exact at the hour's boundaries.
    seconds = sa.func.date_part("epoch", moment - origin, type_=sa.Float)
    slot = sa.cast(sa.func.floor(seconds / 3600.0), sa.Integer)
    return slot, moment >= sa.literal(since, type_=sa.DateTime(timezone=True))


def _place(moment: dt.datetime, start: dt.datetime, since: dt.datetime) -> tuple[int, bool]:
    return int((moment - start).total_seconds() // 3600), moment >= since


def _within(column: Any, ranges: Sequence[tuple[dt.datetime, dt.datetime]]) -> Any:
    return sa.or_(*(sa.and_(column >= lo, column < hi) for lo, hi in ranges))


def _health_attempts(
    ranges: Sequence[tuple[dt.datetime, dt.datetime]], key_ids: Iterable[int] | None
) -> Any:
    """The attempts of ``ranges`` that count for a key's health (key_id, outcome, latency_ms,
    created_at), as a subquery: one range scan per range glued with UNION ALL, each read from
    the covering index alone (an OR of ranges makes PostgreSQL visit the table for every row)."""
    A = KeyAttempt
    keys = None if key_ids is None else list(key_ids)
    scans = []
    for lo, hi in ranges:
        scan = sa.select(
            A.key_id,
            sa.type_coerce(A.outcome, sa.String).label("outcome"),
            A.latency_ms,
            A.created_at,
        ).where(A.created_at >= lo, A.created_at < hi, COUNTS_FOR_HEALTH)
        if keys is not None:
            scan = scan.where(A.key_id.in_(keys))
        scans.append(scan)
    glued = sa.union_all(*scans) if len(scans) > 1 else scans[0]
    return glued.subquery("attempts")


def raw_attempts(
    db: Session,
    ranges: Sequence[tuple[dt.datetime, dt.datetime]],
    key_ids: Iterable[int] | None,
    start: dt.datetime,
    since: dt.datetime,
) -> list[tuple[int, str, int, int, bool]]:
    """(key_id, outcome, latency_ms, hours after ``start``, at or after ``since``) of the
    attempts in ``ranges``; an admin's key tests are left out (they are no key's health)."""
    if not ranges:
        return []
    R = _health_attempts(ranges, key_ids).c
    placed = _placed(db, R.created_at, start, since)
    query = sa.select(R.key_id, R.outcome, R.latency_ms, *(placed or (R.created_at,)))
    rows = db.execute(query).all()
    if placed is not None:
        return [tuple(row) for row in rows]
    return [(k, o, lat, *_place(moment, start, since)) for k, o, lat, moment in rows]


def raw_images(
    db: Session,
    ranges: Sequence[tuple[dt.datetime, dt.datetime]],
    start: dt.datetime,
    since: dt.datetime,
) -> tuple[Counter[tuple[int, bool]], list[tuple[str, int, int, bool]]]:
    """How many images were made in ``ranges``, by where they fall (hours after ``start``, at
    or after ``since``); and (class, failed images, where) of the jobs that ended in
    ``ranges`` with failed images (a batch of N that made M failed N - M)."""
    if not ranges:
        return Counter(), []
    made_at = GenerationImage.created_at
    placed = _placed(db, made_at, start, since)
    made: Counter[tuple[int, bool]] = Counter()
    if placed is not None:
        # Only counts are needed: the database groups them.
        for slot, recent, count in db.execute(
            sa.select(*placed, sa.func.count()).where(_within(made_at, ranges)).group_by(*placed)
        ):
            made[(slot, recent)] += count
    else:
        for (moment,) in db.execute(sa.select(made_at).where(_within(made_at, ranges))):
            made[_place(moment, start, since)] += 1
    G = Generation
    images = (
        sa.select(sa.func.count())
        .where(GenerationImage.generation_id == G.id)
        .correlate(G)
        .scalar_subquery()
    )
    ended = db.execute(
        sa.select(
            sa.func.coalesce(G.error_code, "provider_unavailable"),
            Message.batch_size - images,
            G.finished_at,
        )
        .join(Message, Message.id == G.message_id)
        .where(
            G.status.in_((GenerationStatus.FAILED, GenerationStatus.PARTIAL)),
            _within(G.finished_at, ranges),
        )
    ).all()
    failures = [
        (name, max(int(count or 0), 0), *_place(finished, start, since))
        for name, count, finished in ended
    ]
    return made, failures


# --- the last 24 hours ------------------------------------------------------------------------


def _day_plan(db: Session, now: dt.datetime) -> tuple[list[Any], list[Any]]:
    """(summed hours with when they were summed, raw ranges) covering [now - 24 h, now]."""
    start = now - DAY
    first_full = floor_hour(start) + HOUR
    # Raw from the hour that holds "an hour ago": the last hour is counted from its rows.
    live = min(live_from(now), floor_hour(now - HOUR))
    marks = sorted(
        (stats_hour(hour), rolled_at)
        for hour, rolled_at in db.execute(
            sa.select(StatHour.hour, StatHour.rolled_at).where(
                StatHour.hour >= first_full, StatHour.hour < live
            )
        )
    )
    summed = {hour for hour, _ in marks}
    ranges: list[tuple[dt.datetime, dt.datetime]] = [(start, first_full)]
    hour = first_full
    while hour < live:
        if hour not in summed:
            ranges.append((hour, hour + HOUR))
        hour += HOUR
    ranges.append((live, now + dt.timedelta(seconds=1)))
    return marks, _merge(ranges)


def _merge(ranges: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


@dataclasses.dataclass
class AttemptActivity:
    chart: HourlySeries
    keys: dict[int, KeyStats]
    hour: Counter[str]
    day: Counter[str]


def attempt_activity(
    db: Session,
    now: dt.datetime,
    key_ids: Iterable[int] | None = None,
    *,
    latencies: bool = True,
) -> AttemptActivity:
    """Key attempts in the last hour and 24 hours: per key, by outcome, and per chart hour.
    ``latencies=False``: counts only (the windows' percentiles stay empty)."""
    keys = None if key_ids is None else list(key_ids)
    hours = hour_starts(now)
    slot = {h: i for i, h in enumerate(hours)}
    series = {name: [0] * HOURS for name in OUTCOMES}
    per_key: dict[int, KeyStats] = defaultdict(KeyStats)
    last_hour, last_day = Counter[str](), Counter[str]()
    marks, ranges = _day_plan(db, now)

    if marks:
        summary = _attempt_summaries(db, marks, keys)
        for hour, counts in summary.chart.items():
            index = slot.get(hour)
            if index is not None:
                for name, count in counts.items():
                    series.setdefault(name, [0] * HOURS)[index] += count
        for key_id, counts in summary.outcomes.items():
            per_key[key_id].day.outcomes.update(counts)
            last_day.update(counts)
        for key_id, counts in summary.latencies.items():
            per_key[key_id].day.summarized.update(counts)

    summarized = {key_id for key_id, counts in per_key.items() if counts.day.summarized}
    if not latencies:
        summarized = set()
    if db.get_bind().dialect.name == "postgresql":
        # Thousands of raw rows: the database counts them and buckets the latencies that only
        # feed a histogram; Python gets the exact latencies it needs and the counts.
        counted, exact, buckets = _raw_attempts_summed(
            db, ranges, keys, hours[0], now - HOUR, summarized, latencies=latencies
        )
        for key_id, latency, recent in exact:
            stats = per_key[key_id]
            if recent:
                stats.hour.latencies.append(latency)
            if key_id not in summarized:
                stats.day.latencies.append(latency)
        for key_id, index, count in buckets:
            per_key[key_id].day.summarized[index] += count
    else:
        counted = []
        for key_id, outcome, latency, index, recent in raw_attempts(
            db, ranges, keys, hours[0], now - HOUR
        ):
            counted.append((key_id, outcome, index, recent, 1))
            per_key[key_id].day.latencies.append(latency)
            if recent:
                per_key[key_id].hour.latencies.append(latency)
    for key_id, outcome, index, recent, count in counted:
        stats = per_key[key_id]
        stats.day.outcomes[outcome] += count
        last_day[outcome] += count
        if recent:
            stats.hour.outcomes[outcome] += count
            last_hour[outcome] += count
        if 0 <= index < HOURS:
            series.setdefault(outcome, [0] * HOURS)[index] += count
    return AttemptActivity(HourlySeries(hours, series), dict(per_key), last_hour, last_day)


def _raw_attempts_summed(
    db: Session,
    ranges: Sequence[tuple[dt.datetime, dt.datetime]],
    key_ids: list[int] | None,
    start: dt.datetime,
    since: dt.datetime,
    summarized: set[int],
    *,
    latencies: bool = True,
) -> tuple[list[Any], list[Any], list[Any]]:
    """The raw attempts of ``ranges`` on PostgreSQL, in three small answers:

    - (key_id, outcome, chart slot, in the last hour, count);
    - (key_id, latency, in the last hour) of the attempts whose exact latency is used: those
      of the last hour, and every one of a key without summarized hours (its day is exact);
    - (key_id, histogram bucket, count) of the other keys' latencies, bucketed as
      :func:`.histogram.bucket` does, to add to their summaries' histograms.
    """
    if not ranges:
        return [], [], []
    R = _health_attempts(ranges, key_ids).c
    placed = _placed(db, R.created_at, start, since)
    assert placed is not None
    slot, recent = placed
    # Plain Core rows (the connection, not the ORM session): thousands of small tuples.
    run = db.connection().execute
    counted = run(
        sa.select(R.key_id, R.outcome, slot, recent, sa.func.count()).group_by(
            R.key_id, R.outcome, slot, recent
        )
    ).all()
    if not latencies:
        return counted, [], []
    # The summarized keys as one array parameter, not a hundred: the statement stays small.
    summed = sa.literal(sorted(summarized), ARRAY(sa.Integer))
    exact = [sa.or_(recent, R.key_id != sa.all_(summed))] if summarized else []
    values = run(sa.select(R.key_id, R.latency_ms, recent).where(*exact)).all()
    buckets: list[Any] = []
    if summarized:
        latency = sa.cast(R.latency_ms, sa.Float)
        index = sa.case(
            (R.latency_ms < 1, 0),
            else_=sa.cast(
                sa.func.floor(sa.func.ln(latency) / sa.literal(histogram.LOG, sa.Float)) + 1,
                sa.Integer,
            ),
        )
        buckets = run(
            sa.select(R.key_id, index, sa.func.count())
            .where(R.key_id == sa.any_(summed))
            .group_by(R.key_id, index)
        ).all()
    return counted, values, buckets


@dataclasses.dataclass(frozen=True)
class _AttemptSummary:
    """The summed hours of a day, added up: per chart hour and outcome, per key and outcome,
    and each key's latency histogram."""

    chart: dict[dt.datetime, Counter[str]]
    outcomes: dict[int, Counter[str]]
    latencies: dict[int, Counter[int]]


#: Summed hours never change once written (a re-summed hour has a new ``rolled_at``), so their
#: totals are kept per process, keyed by exactly which summaries they add up: the database,
#: the hours with their ``rolled_at``, and the keys asked for.
_SUMMARIES: OrderedDict[Any, _AttemptSummary] = OrderedDict()
_SUMMARIES_LOCK = threading.Lock()
_SUMMARIES_KEPT = 16


def _attempt_summaries(db: Session, marks: list[Any], keys: list[int] | None) -> _AttemptSummary:
    cache_key = (str(db.get_bind().url), tuple(marks), None if keys is None else tuple(keys))
    with _SUMMARIES_LOCK:
        found = _SUMMARIES.get(cache_key)
        if found is not None:
            _SUMMARIES.move_to_end(cache_key)
            return found
    summary = _add_up_summaries(db, [hour for hour, _ in marks], keys)
    with _SUMMARIES_LOCK:
        _SUMMARIES[cache_key] = summary
        while len(_SUMMARIES) > _SUMMARIES_KEPT:
            _SUMMARIES.popitem(last=False)
    return summary


def _add_up_summaries(
    db: Session, summed: list[dt.datetime], keys: list[int] | None
) -> _AttemptSummary:
    """Add the summed hours up in the database (a few thousand small rows at most)."""
    H = KeyAttemptHour
    where = [H.hour.in_(summed)]
    if keys is not None:
        where.append(H.key_id.in_(keys))
    chart: dict[dt.datetime, Counter[str]] = defaultdict(Counter)
    outcomes: dict[int, Counter[str]] = defaultdict(Counter)
    latencies: dict[int, Counter[int]] = defaultdict(Counter)
    outcome = json_items(db, H.outcomes)
    count = sa.func.sum(sa.cast(outcome.c.value, sa.Integer))
    # The JSON function reads each row's column: joined on every row (implicitly LATERAL).
    by_outcome = sa.select(H).join(outcome, sa.true()).where(*where)
    for hour, name, total in db.execute(
        by_outcome.with_only_columns(H.hour, outcome.c.key, count).group_by(H.hour, outcome.c.key)
    ):
        chart[stats_hour(hour)][name] += int(total)
    for key_id, name, total in db.execute(
        by_outcome.with_only_columns(H.key_id, outcome.c.key, count).group_by(
            H.key_id, outcome.c.key
        )
    ):
        outcomes[key_id][name] += int(total)
    bucket = json_items(db, H.latencies)
    for key_id, index, total in db.execute(
        sa.select(H.key_id, bucket.c.key, sa.func.sum(sa.cast(bucket.c.value, sa.Integer)))
        .select_from(H)
        .join(bucket, sa.true())
        .where(*where)
        .group_by(H.key_id, bucket.c.key)
    ):
        latencies[key_id][int(index)] += int(total)
    return _AttemptSummary(dict(chart), dict(outcomes), dict(latencies))


def stats_hour(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


@dataclasses.dataclass
class ImageActivity:
    chart: HourlySeries
    hour: ImageCounts
    day: ImageCounts


def image_activity(db: Session, now: dt.datetime) -> ImageActivity:
    """Images made and failed (by class) in the last hour and 24 hours, and per chart hour."""
    hours = hour_starts(now)
    slot = {h: i for i, h in enumerate(hours)}
    series = {name: [0] * HOURS for name in ("images", *FAILURE_CODES)}
    last_hour, last_day = ImageCounts(), ImageCounts()
    marks, ranges = _day_plan(db, now)
    summed = [hour for hour, _ in marks]

    if summed:
        for row in db.scalars(sa.select(ImageHour).where(ImageHour.hour.in_(summed))):
            index = slot.get(stats_hour(row.hour))
            last_day.made += row.made
            if index is not None:
                series["images"][index] += row.made
            for name, count in (row.failed or {}).items():
                last_day.failed[name] = last_day.failed.get(name, 0) + int(count)
                if index is not None and name in series:
                    series[name][index] += int(count)

    made, failures = raw_images(db, ranges, hours[0], now - HOUR)
    for (index, recent), count in made.items():
        last_day.made += count
        last_hour.made += count if recent else 0
        if 0 <= index < HOURS:
            series["images"][index] += count
    for name, count, index, recent in failures:
        last_day.failed[name] = last_day.failed.get(name, 0) + count
        if recent:
            last_hour.failed[name] = last_hour.failed.get(name, 0) + count
        if 0 <= index < HOURS and name in series:
            series[name][index] += count
    return ImageActivity(HourlySeries(hours, series), last_hour, last_day)
