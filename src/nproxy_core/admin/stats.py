"""Numbers and time series for the admin's overview, health and key pages.

Everything is one aggregate query over an indexed time range (the last hour or day), so the
pages stay fast with millions of generations and attempts. PostgreSQL computes latency
percentiles itself; SQLite (the embedded default, small by nature) has no percentile function,
so there the latencies of the window are read and ranked in Python.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from nproxy_core.generation.models import Generation, GenerationImage, GenerationStatus, Message
from nproxy_core.keypool.models import AttemptOutcome, KeyAttempt

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
#: Buckets of the 24-hour charts.
HOURS = 24

#: Why an image failed, as the generation records it (``Generation.error_code``).
FAILURE_CLASSES = ("content_policy", "invalid_input", "provider_unavailable")
OUTCOMES = tuple(str(o) for o in AttemptOutcome)


class hour_of(FunctionElement[Any]):
    """The UTC hour a timestamp falls in (its value truncated to the hour)."""

    inherit_cache = True


@compiles(hour_of, "postgresql")
def _hour_of_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    # In UTC whatever the session's time zone says.
    return f"date_trunc('hour', timezone('UTC', {compiler.process(column, **kw)}))"


@compiles(hour_of, "sqlite")
def _hour_of_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"strftime('%Y-%m-%d %H:00:00', {compiler.process(column, **kw)})"


def _as_hour(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def hour_starts(now: dt.datetime) -> list[dt.datetime]:
    """The starts of the 24 hours of the charts, the current (partial) hour last."""
    current = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return [current - HOUR * (HOURS - 1 - i) for i in range(HOURS)]


@dataclasses.dataclass(frozen=True)
class HourlySeries:
    """Counts per hour for the last 24 hours, one list per series, aligned with ``hours``."""

    hours: list[dt.datetime]
    series: dict[str, list[int]]

    def total(self, name: str) -> int:
        return sum(self.series.get(name, ()))


def _series(hours: list[dt.datetime], names: Iterable[str], rows: Iterable[Any]) -> HourlySeries:
    index = {hour: i for i, hour in enumerate(hours)}
    series = {name: [0] * len(hours) for name in names}
    for hour, name, count in rows:
        slot = index.get(_as_hour(hour))
        if slot is not None and name in series:
            series[name][slot] += int(count or 0)
    return HourlySeries(hours, series)


def _failed_images(since: Any, until: Any | None = None) -> sa.Select[Any]:
    """Failed images of the generations that ended in the window, with their class.

    A batch of N that made M images failed N - M of them; its ``error_code`` is the class.
    """
    G = Generation
    made = (
        sa.select(sa.func.count())
        .where(GenerationImage.generation_id == G.id)
        .correlate(G)
        .scalar_subquery()
    )
    query = (
        sa.select(G.finished_at, G.error_code, (Message.batch_size - made).label("failed"))
        .join(Message, Message.id == G.message_id)
        .where(
            G.finished_at >= since,
            G.status.in_((GenerationStatus.FAILED, GenerationStatus.PARTIAL)),
        )
    )
    if until is not None:
        query = query.where(G.finished_at < until)
    return query


def images_and_failures_by_hour(db: Session, now: dt.datetime) -> HourlySeries:
    """Images made, and images failed by class, per hour for the last 24 hours."""
    hours = hour_starts(now)
    start = hours[0]
    made = db.execute(
        sa.select(hour_of(GenerationImage.created_at), sa.literal("images"), sa.func.count())
        .where(GenerationImage.created_at >= start)
        .group_by(hour_of(GenerationImage.created_at))
    ).all()
    failed = _failed_images(start).subquery()
    failures = db.execute(
        sa.select(
            hour_of(failed.c.finished_at),
            sa.func.coalesce(failed.c.error_code, "provider_unavailable"),
            sa.func.sum(failed.c.failed),
        ).group_by(hour_of(failed.c.finished_at), failed.c.error_code)
    ).all()
    return _series(hours, ("images", *FAILURE_CLASSES), [*made, *failures])


def attempts_by_hour(db: Session, now: dt.datetime) -> HourlySeries:
    """Key attempts per hour for the last 24 hours, by outcome class."""
    hours = hour_starts(now)
    rows = db.execute(
        sa.select(hour_of(KeyAttempt.created_at), KeyAttempt.outcome, sa.func.count())
        .where(KeyAttempt.created_at >= hours[0])
        .group_by(hour_of(KeyAttempt.created_at), KeyAttempt.outcome)
    ).all()
    return _series(hours, OUTCOMES, [(h, str(o), n) for h, o, n in rows])


@dataclasses.dataclass(frozen=True)
class ImageCounts:
    """Images made and failed (by class) in a window."""

    made: int
    failed: dict[str, int]

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


def image_counts(db: Session, since: dt.datetime) -> ImageCounts:
    made = db.scalar(sa.select(sa.func.count()).where(GenerationImage.created_at >= since))
    failed = _failed_images(since).subquery()
    rows = db.execute(
        sa.select(
            sa.func.coalesce(failed.c.error_code, "provider_unavailable"),
            sa.func.sum(failed.c.failed),
        ).group_by(failed.c.error_code)
    ).all()
    by_class = {name: 0 for name in FAILURE_CLASSES}
    for code, count in rows:
        by_class[code] = by_class.get(code, 0) + int(count or 0)
    return ImageCounts(int(made or 0), by_class)


def attempt_outcomes(db: Session, since: dt.datetime) -> dict[str, int]:
    """Key attempts since ``since`` by outcome class (every class present, zero or not)."""
    counts = dict.fromkeys(OUTCOMES, 0)
    rows = db.execute(
        sa.select(KeyAttempt.outcome, sa.func.count())
        .where(KeyAttempt.created_at >= since)
        .group_by(KeyAttempt.outcome)
    ).all()
    for outcome, count in rows:
        counts[str(outcome)] = int(count)
    return counts


@dataclasses.dataclass(frozen=True)
class Window:
    """A key's attempts over a window: how many, how many succeeded, latency percentiles."""

    attempts: int = 0
    successes: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None

    @property
    def success_rate(self) -> float | None:
        return None if not self.attempts else self.successes / self.attempts


@dataclasses.dataclass(frozen=True)
class KeyStats:
    hour: Window = Window()
    day: Window = Window()


def key_stats(
    db: Session, now: dt.datetime, key_ids: Iterable[int] | None = None
) -> dict[int, KeyStats]:
    """Per key, over the last hour and the last day: attempts, successes, latency p50/p95."""
    hour, day = now - HOUR, now - DAY
    A = KeyAttempt
    where = [A.created_at >= day]
    if key_ids is not None:
        where.append(A.key_id.in_(list(key_ids)))
    success = A.outcome == AttemptOutcome.SUCCESS
    in_hour = A.created_at >= hour
    if db.get_bind().dialect.name != "postgresql":
        return _key_stats_in_python(db, where, hour)

    def pct(fraction: float, *conditions: Any) -> Any:
        agg = sa.func.percentile_cont(fraction).within_group(A.latency_ms)
        return agg.filter(*conditions) if conditions else agg

    rows = db.execute(
        sa.select(
            A.key_id,
            sa.func.count().filter(in_hour),
            sa.func.count().filter(in_hour, success),
            pct(0.5, in_hour),
            pct(0.95, in_hour),
            sa.func.count(),
            sa.func.count().filter(success),
            pct(0.5),
            pct(0.95),
        )
        .where(*where)
        .group_by(A.key_id)
    ).all()
    return {
        row[0]: KeyStats(
            hour=Window(row[1], row[2], row[3], row[4]),
            day=Window(row[5], row[6], row[7], row[8]),
        )
        for row in rows
    }


def percentile(values: list[int], fraction: float) -> float | None:
    """Linear-interpolated percentile of sorted ``values``, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    position = (len(values) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return values[low] + (values[high] - values[low]) * (position - low)


def _key_stats_in_python(db: Session, where: list[Any], hour: dt.datetime) -> dict[int, KeyStats]:
    A = KeyAttempt
    latencies: dict[int, dict[str, list[int]]] = defaultdict(lambda: {"hour": [], "day": []})
    successes: dict[int, dict[str, int]] = defaultdict(lambda: {"hour": 0, "day": 0})
    for key_id, created_at, outcome, latency in db.execute(
        sa.select(A.key_id, A.created_at, A.outcome, A.latency_ms).where(*where)
    ):
        windows = ("hour", "day") if created_at >= hour else ("day",)
        for window in windows:
            latencies[key_id][window].append(latency)
            successes[key_id][window] += outcome == AttemptOutcome.SUCCESS

    def window(key_id: int, name: str) -> Window:
        values = sorted(latencies[key_id][name])
        return Window(
            len(values), successes[key_id][name], percentile(values, 0.5), percentile(values, 0.95)
        )

    return {k: KeyStats(hour=window(k, "hour"), day=window(k, "day")) for k in latencies}
