"""The periodic job that sums each closed hour of attempts and images once (see
:mod:`.models`), so the admin's pages stay fast however many rows the tables hold.

An hour is summed when it can no longer change: it ended before the live window (the current
and the previous hour), which the pages always read raw. Each hour is summed in a transaction
of its own, marked in ``stat_hours`` in the same transaction; two jobs summing the same hour
collide on that row's key and the second gives up the hour, so nothing is counted twice.
Summaries older than :data:`KEEP` are removed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from nproxy_core.admin import histogram
from nproxy_core.admin.models import ImageHour, KeyAttemptHour, StatHour
from nproxy_core.admin.stats import HOUR, live_from, raw_attempts, raw_images
from nproxy_core.db import utcnow
from nproxy_core.keypool.errors import FAILURE_CODES

log = logging.getLogger(__name__)

#: How far back a job fills hours that were never summed (the pages look back one day).
BACKFILL = dt.timedelta(hours=48)
#: Summaries kept.
KEEP = dt.timedelta(days=90)
#: How often ``nproxy beat`` runs the job.
INTERVAL_SECONDS = 300


def sum_hour(db: Session, hour: dt.datetime) -> None:
    """Write the summaries of one hour (the caller marks it and commits)."""
    span = [(hour, hour + HOUR)]
    outcomes: dict[int, Counter[str]] = defaultdict(Counter)
    latencies: dict[int, Counter[int]] = defaultdict(Counter)
    for key_id, outcome, latency, _slot, _recent in raw_attempts(db, span, None, hour, hour):
        outcomes[key_id][outcome] += 1
        latencies[key_id][histogram.bucket(latency)] += 1
    for key_id, counts in outcomes.items():
        db.add(
            KeyAttemptHour(
                hour=hour,
                key_id=key_id,
                outcomes=dict(counts),
                latencies=histogram.to_json(latencies[key_id]),
            )
        )
    made, failures = raw_images(db, span, hour, hour)
    failed = dict.fromkeys(FAILURE_CODES, 0)
    for name, count, _slot, _recent in failures:
        failed[name] = failed.get(name, 0) + count
    db.add(ImageHour(hour=hour, made=sum(made.values()), failed=failed))


def roll_up(session_factory: sessionmaker[Session], now: dt.datetime | None = None) -> int:
    """Sum every closed hour of the last :data:`BACKFILL` not summed yet; returns how many."""
    now = now or utcnow()
    until = live_from(now)
    with session_factory() as db:
        done = set(db.scalars(sa.select(StatHour.hour).where(StatHour.hour >= until - BACKFILL)))
    summed = 0
    hour = until - BACKFILL
    while hour < until:
        if hour not in done:
            try:
                with session_factory.begin() as db:
                    # The mark first: a concurrent job summing this hour fails here, early.
                    # The real time, not ``now``: it tells a re-summed hour apart.
                    db.add(StatHour(hour=hour, rolled_at=utcnow()))
                    db.flush()
                    sum_hour(db, hour)
                summed += 1
            except IntegrityError:
                log.info("hour %s was summed by another job", hour)
        hour += HOUR
    with session_factory.begin() as db:
        old = now - KEEP
        db.execute(sa.delete(KeyAttemptHour).where(KeyAttemptHour.hour < old))
        db.execute(sa.delete(ImageHour).where(ImageHour.hour < old))
        db.execute(sa.delete(StatHour).where(StatHour.hour < old))
    if summed:
        log.info("summed %d hours of attempts and images", summed)
    return summed
