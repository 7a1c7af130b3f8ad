"""One worker process keeps hundreds of provider calls in flight, and still finishes each job
exactly once when it is killed in the middle of them."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa

from fakes.gemini import fake_gemini
from generation_support import fresh_cycle
from nproxy_core.generation.models import TERMINAL, Generation, GenerationImage, GenerationStatus
from nproxy_core.quota.models import HoldState, QuotaHold

JOBS = 256


def wait_until(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.05)


@pytest.mark.slow
def test_one_worker_keeps_256_slow_calls_in_flight_and_finishes_each_job_once_after_a_kill_9(
    make_app, worker_settings, start_process, customer_factory, add_key, db
):
    with fake_gemini(default="slow") as gemini:
        settings = {
            **worker_settings,
            "nproxy.providers": "nanobanana",
            "nanobanana.api_base": gemini.base_url,
            "nanobanana.timeout_seconds": "60",
            # A dead worker's jobs are free once it has been silent for 15 s (its liveness beat,
            # on a connection of its own, speaks for all 256), and the sweeper sends them again
            # at once. (Queued jobs are not sent twice: the first worker would start with 512.)
            "nproxy.generation.sweep_interval_seconds": "0.5",
            # 256 threads share a small pool: the machine's database has few connections.
            "sqlalchemy.pool_size": "5",
            "sqlalchemy.max_overflow": "5",
        }
        app = make_app(**settings)
        add_key(app.app.registry, "slow-key-1", provider="nanobanana")
        gemini.behave("slow-key-1", "slow", delay=6)
        alice = customer_factory(app, request_limit=JOBS)
        conversation = alice.conversation()
        resolution = alice.api.get("/api/v1/models").json["models"][0]["resolutions"][0]["id"]
        ids = []
        for n in range(JOBS):
            submitted = alice.submit(conversation, prompt=f"picture {n}", resolution=resolution)
            assert submitted.status_int == 202, submitted.text
            ids.append(uuid.UUID(submitted.json["id"]))

        # No --concurrency: the default of nproxy.worker.concurrency is what is measured.
        first = start_process("worker", settings)
        wait_until(
            lambda: gemini.in_flight >= JOBS,
            timeout=60,
            what=f"the fake provider never had {JOBS} calls in flight (most: "
            f"{gemini.max_in_flight})",
        )
        first.kill9()  # every job is in the middle of its provider call
        unfinished = db.scalar(
            sa.select(sa.func.count()).where(
                Generation.id.in_(ids), Generation.finished_at.is_(None)
            )
        )
        assert unfinished == JOBS

        gemini.behave("slow-key-1", "slow", delay=1)
        start_process("beat", settings)
        start_process("worker", settings)

        def all_terminal() -> bool:
            db.expire_all()
            states = db.scalars(sa.select(Generation.status).where(Generation.id.in_(ids)))
            return all(state in TERMINAL for state in states)

        wait_until(all_terminal, timeout=120, what="the jobs did not all finish")

    generations = list(db.scalars(sa.select(Generation).where(Generation.id.in_(ids))))
    assert Counter(g.status for g in generations) == {GenerationStatus.SUCCEEDED: JOBS}
    assert all(g.attempts >= 2 for g in generations)  # each was run again after the kill
    images = Counter(
        db.scalars(
            sa.select(GenerationImage.generation_id).where(GenerationImage.generation_id.in_(ids))
        )
    )
    assert images == {gid: 1 for gid in ids}
    holds = db.scalars(
        sa.select(QuotaHold).where(QuotaHold.id.in_([g.quota_hold_id for g in generations]))
    )
    assert {(h.state, h.consumed) for h in holds} == {(HoldState.SETTLED, 1)}
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (JOBS, 0)
