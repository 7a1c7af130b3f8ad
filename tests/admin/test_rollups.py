"""Hourly summaries (admin/models.py, admin/rollups.py): the pages give the same numbers
whether an hour was summed or is read raw, every hour is summed once even by jobs running at
the same moment, and percentiles read from histograms stay within 2.5 % of the exact ones."""

from __future__ import annotations

import datetime as dt
import random
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import make_generation
from nproxy_core.admin import histogram, rollups, stats
from nproxy_core.admin.models import ImageHour, KeyAttemptHour, StatHour
from nproxy_core.audit import Actor, Surface
from nproxy_core.db import IDatabase
from nproxy_core.generation.models import GenerationImage
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.errors import FAILURE_CODES
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.keypool.models import KeyAttempt
from nproxy_core.wiring import find_service

NOW = dt.datetime(2026, 3, 1, 14, 37, 12, tzinfo=dt.UTC)


@pytest.fixture
def factory(app: Any) -> Any:
    return find_service(app.app.registry, IDatabase).session_factory


@pytest.fixture
def day(app: Any, db: Any, user_factory: Any) -> dict[str, Any]:
    """Two days of attempts on two keys, and generations with images and failures, spread
    over every hour up to ``NOW``."""
    secrets = find_service(app.app.registry, ISecretBox)
    keys = [
        pool.add_key(
            db,
            secrets,
            provider="demo",
            secret=f"demo-rollup-{i}",
            enabled_providers=["demo"],
            actor=Actor("t", Surface.CLI),
        ).id
        for i in range(2)
    ]
    user = user_factory()
    rng = random.Random(7)
    outcomes = ["success"] * 8 + ["retryable", "key_rejected"]
    for minute in range(0, 49 * 60, 7):
        moment = NOW - dt.timedelta(minutes=minute, seconds=rng.randrange(60))
        db.add(
            KeyAttempt(
                key_id=keys[minute % 2],
                provider="demo",
                path="direct",
                outcome=rng.choice(outcomes),
                latency_ms=rng.randrange(50, 20000),
                picked_at=moment,
                claim_version=minute,
                created_at=moment,
            )
        )
    db.commit()
    for hours_ago in range(0, 30, 2):
        moment = NOW - dt.timedelta(hours=hours_ago, minutes=rng.randrange(60))
        ok = make_generation(db, user, created_at=moment)
        db.add(
            GenerationImage(
                generation_id=ok.id,
                user_id=user.id,
                n=0,
                storage_key=f"generations/{ok.id}/0.png",
                mime="image/png",
                width=8,
                height=8,
                size_bytes=10,
                created_at=moment,
            )
        )
        make_generation(
            db,
            user,
            status="failed",
            batch_size=2,
            created_at=moment,
            error_code=rng.choice(FAILURE_CODES),
        )
    db.commit()
    return {"keys": keys}


def snapshot(db: Any) -> dict[str, Any]:
    attempts = stats.attempt_activity(db, NOW)
    images = stats.image_activity(db, NOW)
    return {
        "chart": attempts.chart.series,
        "hour": dict(attempts.hour),
        "day": dict(attempts.day),
        "keys": {
            k: (dict(s.hour.outcomes), dict(s.day.outcomes)) for k, s in attempts.keys.items()
        },
        "images": images.chart.series,
        "images_hour": (images.hour.made, images.hour.failed),
        "images_day": (images.day.made, images.day.failed),
    }


def test_summed_hours_give_the_same_numbers_as_raw_rows(db, factory, day):
    raw = snapshot(db)
    assert raw["day"] and raw["images_day"][0] > 0 and sum(raw["images_day"][1].values()) > 0
    assert rollups.roll_up(factory, NOW) == 48  # the 48 hours before the two live ones
    db.expire_all()
    assert db.scalar(sa.select(sa.func.count()).select_from(StatHour)) == 48
    assert snapshot(db) == raw
    summed = stats.attempt_activity(db, NOW).keys[day["keys"][0]].day
    assert summed.estimated


def test_a_partly_summed_day_still_adds_up(db, factory, day):
    raw = snapshot(db)
    rollups.roll_up(factory, NOW)
    # Forget some summaries, as if the job had missed those hours: they are read raw again.
    db.execute(
        sa.delete(StatHour).where(
            StatHour.hour.in_([stats.floor_hour(NOW) - dt.timedelta(hours=h) for h in (5, 9, 23)])
        )
    )
    db.commit()
    assert snapshot(db) == raw


def test_percentiles_from_summaries_stay_within_two_and_a_half_percent(db, factory, day):
    exact = {
        k: (s.day.p50_ms, s.day.p95_ms) for k, s in stats.attempt_activity(db, NOW).keys.items()
    }
    rollups.roll_up(factory, NOW)
    estimated = stats.attempt_activity(db, NOW).keys
    for key_id, (p50, p95) in exact.items():
        assert estimated[key_id].day.p50_ms == pytest.approx(p50, rel=0.025)
        assert estimated[key_id].day.p95_ms == pytest.approx(p95, rel=0.025)


def test_jobs_running_at_once_sum_each_hour_once(db, factory, day):
    barrier = threading.Barrier(3)
    done: list[int] = []

    def run() -> None:
        barrier.wait()
        done.append(rollups.roll_up(factory, NOW))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(done) == 48
    db.expire_all()
    assert db.scalar(sa.select(sa.func.count()).select_from(ImageHour)) == 48
    rows = db.execute(sa.select(KeyAttemptHour.hour, KeyAttemptHour.key_id)).all()
    assert len(rows) == len(set(rows))


def test_a_second_run_sums_nothing_again_and_old_summaries_are_dropped(db, factory, day):
    rollups.roll_up(factory, NOW)
    assert rollups.roll_up(factory, NOW) == 0
    later = NOW + rollups.KEEP + dt.timedelta(days=2)
    rollups.roll_up(factory, later)
    db.expire_all()
    assert db.scalar(sa.select(sa.func.min(StatHour.hour))) >= later - rollups.KEEP


def test_the_job_is_a_celery_task_on_beats_schedule(app):
    from nproxy_core.tasks import CELERY_APP

    schedule = app.app.registry[CELERY_APP].conf.beat_schedule
    assert schedule["admin.roll_up_hours"]["task"] == "admin.roll_up_hours"
    assert "admin.roll_up_hours" in app.app.registry[CELERY_APP].tasks


@pytest.mark.parametrize("seed", range(5))
def test_histogram_percentiles_are_close_to_the_exact_ones(seed):
    rng = random.Random(seed)
    values = sorted(int(rng.lognormvariate(8, 1)) for _ in range(5000))
    counts = histogram.histogram(values)
    for fraction in (0.5, 0.9, 0.95, 0.99):
        exact = histogram.exact_percentile(values, fraction)
        assert histogram.estimate_percentile(counts, fraction) == pytest.approx(exact, rel=0.025)
    assert histogram.from_json(histogram.to_json(counts)) == counts


def test_histogram_buckets_hold_what_they_say():
    for value in (0, 0.5, 1, 2, 999, 1000, 1001, 65000, 600000):
        low, high = histogram.edges(histogram.bucket(value))
        assert low <= value < high
    assert histogram.estimate_percentile({}, 0.5) is None


def test_summaries_work_on_the_embedded_sqlite_database(tmp_path):
    """The embedded default sums hours too (json_each instead of jsonb_each_text)."""
    from nproxy_core.db import create_engine, session_factory
    from nproxy_core.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'embedded.sqlite'}"
    upgrade({"sqlalchemy.url": url})
    engine = create_engine({"sqlalchemy.url": url})
    factory = session_factory(engine)
    with factory() as db:
        key = pool.add_key(
            db,
            pool_secrets(),
            provider="demo",
            secret="demo-sqlite-rollup",
            enabled_providers=["demo"],
            actor=Actor("t", Surface.CLI),
        )
        rng = random.Random(3)
        for minute in range(0, 30 * 60, 11):
            moment = NOW - dt.timedelta(minutes=minute)
            db.add(
                KeyAttempt(
                    key_id=key.id,
                    provider="demo",
                    path="direct",
                    outcome=rng.choice(["success", "success", "retryable"]),
                    latency_ms=rng.randrange(100, 9000),
                    picked_at=moment,
                    claim_version=minute,
                    created_at=moment,
                )
            )
        db.commit()
        before = stats.attempt_activity(db, NOW)
    assert rollups.roll_up(factory, NOW) == 48
    with factory() as db:
        after = stats.attempt_activity(db, NOW)
    assert after.chart.series == before.chart.series
    assert after.day == before.day and after.hour == before.hour
    assert after.keys[key.id].day.estimated
    assert after.keys[key.id].day.p95_ms == pytest.approx(before.keys[key.id].day.p95_ms, rel=0.025)
    engine.dispose()


def pool_secrets() -> Any:
    from nproxy_core.keypool.crypto import SecretBox

    return SecretBox("test-secret-" + "x" * 40)
