"""A job is its worker's while that worker process lives (DESIGN 4.4, 4.11): a live worker never
loses a job however long it runs or stalls; a killed worker's jobs are run again within seconds
of its death, not after a lease; and a worker that cannot reach the database takes the job up
again as soon as the database answers, instead of leaving it ``running``.

Real worker and beat processes against RabbitMQ and PostgreSQL (see conftest.py). The
deadlines are generous for a loaded machine and still far below what the old two-minute lease
needed."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import time
import uuid
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from zope.interface.verify import verifyObject

from conftest import ADMIN_URL, cut_every_connection
from generation_support import Process, fresh_cycle, wait_for_generation
from nproxy_core.config import ConfigurationError
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.generation.models import TERMINAL, Generation, GenerationStatus
from nproxy_core.generation.settings import GenerationSettings
from nproxy_core.generation.sweeper import sweep
from nproxy_core.generation.tasks import run_generation
from nproxy_core.health.liveness import IWorkerLiveness
from nproxy_core.health.models import WorkerProcess
from nproxy_core.tasks import run_now
from nproxy_core.wiring import find_service

#: What the old design took for a killed worker's job: a 120 s lease, then a sweep.
OLD_LEASE_SECONDS = 120


def wait_until(condition: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.1)


def generations(db: Any, ids: list[str]) -> list[Generation]:
    db.expire_all()
    return list(
        db.scalars(sa.select(Generation).where(Generation.id.in_([uuid.UUID(i) for i in ids])))
    )


def worker_id_of(db: Any, process: Process) -> str:
    db.expire_all()
    row = db.scalar(sa.select(WorkerProcess).where(WorkerProcess.pid == process.popen.pid))
    assert row is not None, "the worker process never recorded itself"
    return row.id


# --- the rule, in this process ------------------------------------------------------------------


def test_a_job_is_free_only_once_its_worker_process_is_silent(app, add_key, customer_factory, db):
    add_key(app.app.registry, "demo-key-1")
    alice = customer_factory(app)
    gid = alice.submit(alice.conversation(), resolution="square").json["id"]
    now = utcnow()
    db.add(WorkerProcess(id="w" * 32, hostname="celery@elsewhere", pid=1, last_seen_at=now))
    # Claimed by that worker a moment ago, with no lease at all: only its beat holds it.
    db.execute(
        sa.update(Generation)
        .where(Generation.id == uuid.UUID(gid))
        .values(
            status=GenerationStatus.RUNNING,
            worker_id="w" * 32,
            lease_owner="elsewhere:1:run",
            lease_expires_at=None,
            attempts=1,
            started_at=now,
            enqueued_at=now - dt.timedelta(seconds=1),
        )
    )
    db.commit()
    registry = app.app.registry
    # This process runs no worker: it has no worker id, and its runs hold leases instead.
    liveness = find_service(registry, IWorkerLiveness)
    assert verifyObject(IWorkerLiveness, liveness) and liveness.worker_id is None
    session_factory = find_service(registry, IDatabase).session_factory
    settings = GenerationSettings()
    sent: list[str] = []

    # Its worker beat just now: a redelivered task and the sweeper leave it alone.
    assert run_now(registry, run_generation, gid) == "skipped"
    sweep(session_factory, settings, sent.append)
    assert sent == []

    # Silent for longer than lost_after_seconds: sent again at once, and only once.
    later = now + dt.timedelta(seconds=settings.lost_after_seconds + 1)
    sweep(session_factory, settings, sent.append, now=later)
    sweep(session_factory, settings, sent.append, now=later + dt.timedelta(seconds=5))
    assert sent == [gid]
    db.execute(
        sa.update(WorkerProcess).values(
            last_seen_at=now - dt.timedelta(seconds=settings.lost_after_seconds + 1)
        )
    )
    db.commit()
    assert run_now(registry, run_generation, gid) == "succeeded"
    [done] = generations(db, [gid])
    assert (done.attempts, done.worker_id) == (2, None)  # this process runs no worker
    assert fresh_cycle(db, alice.cycle.id).used == 1


# --- real workers -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_workers_jobs_finish_within_seconds_of_its_death(
    make_app, worker_settings, start_worker, start_process, customer_factory, add_key, db
):
    # The shipped defaults (beat every 3 s, dead after 15 s of silence, a sweep every 5 s):
    # only the provider is made slow enough to be killed in the middle of it.
    provider_seconds = 6.0
    overrides = {"demo.delay_seconds": str(provider_seconds)}
    settings = {**worker_settings, **overrides}
    app = make_app(**settings)
    add_key(app.app.registry, "demo-key-1")
    alice = customer_factory(app)
    conversation = alice.conversation()
    doomed = start_worker(**overrides)
    start_worker(**overrides)
    start_process("beat", settings)
    ids = [
        alice.submit(conversation, prompt=f"picture {n}", resolution="square").json["id"]
        for n in range(6)
    ]
    wait_until(
        lambda: all(g.status == GenerationStatus.RUNNING for g in generations(db, ids)),
        timeout=60,
        what="the workers did not take every job",
    )
    dead = worker_id_of(db, doomed)
    orphans = [str(g.id) for g in generations(db, ids) if g.worker_id == dead]
    assert orphans, "the broker gave the first worker no job"

    doomed.kill9()  # in the middle of its provider calls
    died = time.monotonic()
    # 30 s of the promise plus the provider's time, and as much again for a loaded machine.
    deadline = 2 * (30 + provider_seconds)
    assert deadline < OLD_LEASE_SECONDS
    wait_until(
        lambda: all(g.status in TERMINAL for g in generations(db, ids)),
        timeout=deadline,
        what="the dead worker's jobs did not all finish",
    )
    print(f"{len(orphans)} jobs of the dead worker finished {time.monotonic() - died:.1f} s later")
    done = generations(db, ids)
    assert {g.status for g in done} == {GenerationStatus.SUCCEEDED}
    assert {g.attempts for g in done if str(g.id) in orphans} == {2}
    assert dead not in {g.worker_id for g in done}
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (6, 0)


@pytest.mark.slow
def test_a_live_worker_keeps_its_job_through_a_stall_longer_than_the_lease(
    make_app, worker_settings, start_worker, start_process, customer_factory, add_key, db
):
    # A lease of 1 s, sweeps twice a second and another worker waiting: under the old design
    # a stall of the worker (a starved process: here SIGSTOP) lost it the job at once.
    overrides = {
        "demo.delay_seconds": "6",
        "nproxy.generation.lease_seconds": "1",
        "nproxy.generation.requeue_after_seconds": "1",
        "nproxy.generation.sweep_interval_seconds": "0.5",
    }
    settings = {**worker_settings, **overrides}
    app = make_app(**settings)
    add_key(app.app.registry, "demo-key-1")
    alice = customer_factory(app)
    workers = [start_worker(**overrides), start_worker(**overrides)]
    start_process("beat", settings)
    gid = alice.submit(alice.conversation(), resolution="square").json["id"]
    running = wait_for_generation(db, gid, states=[GenerationStatus.RUNNING])
    [owner] = [w for w in workers if worker_id_of(db, w) == running.worker_id]

    os.kill(owner.popen.pid, signal.SIGSTOP)
    try:
        # Well past the lease and many sweeps, well short of 15 s of silence.
        time.sleep(4)
        [stalled] = generations(db, [gid])
        assert (stalled.status, stalled.attempts) == (GenerationStatus.RUNNING, 1)
    finally:
        os.kill(owner.popen.pid, signal.SIGCONT)

    done = wait_for_generation(db, gid, timeout=60)
    assert (done.status, done.attempts) == (GenerationStatus.SUCCEEDED, 1)
    assert done.worker_id == worker_id_of(db, owner)
    assert "lease lost" not in owner.log


def _allow_connections(database: str, allowed: bool) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')


@pytest.mark.slow
def test_a_job_whose_worker_cannot_reach_the_database_finishes_once_it_answers(
    make_app, worker_settings, start_worker, customer_factory, add_key, db, engine
):
    # No beat and the shipped two-minute lease: nothing but the task itself can take the
    # job up again in time.
    overrides = {"demo.delay_seconds": "3"}
    settings = {**worker_settings, **overrides}
    app = make_app(**settings)
    add_key(app.app.registry, "demo-key-1")
    alice = customer_factory(app)
    worker = start_worker(**overrides)
    gid = alice.submit(alice.conversation(), resolution="square").json["id"]
    wait_for_generation(db, gid, states=[GenerationStatus.RUNNING])

    db.rollback()  # its connection back to the tests' pool, which pings when it lends one
    database = engine.url.database
    # Refused like "too many clients": no new connection, and every open one cut.
    _allow_connections(database, False)
    try:
        cut_every_connection(database)
        # The run meets the refusal when the provider is done (its key's bookkeeping, then
        # its finish), and its task stops: to run again (or, before, to fail for good).
        wait_until(
            lambda: re.search(
                r"generation\.run.*(could not reach the database|raised unexpected)", worker.log
            ),
            timeout=60,
            what="the run never met the refusal",
        )
    finally:
        _allow_connections(database, True)
    answered = time.monotonic()

    done = wait_for_generation(db, gid, timeout=30)
    print(f"finished {time.monotonic() - answered:.1f} s after the database answered again")
    assert done.status == GenerationStatus.SUCCEEDED
    assert len(alice.poll(gid)["images"]) == 1
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (1, 0)


@pytest.mark.parametrize("seconds", ["soon", "0", "-1"])
def test_a_malformed_lost_after_stops_start_up_naming_the_setting(make_app, seconds):
    with pytest.raises(ConfigurationError, match=r"nproxy\.worker\.lost_after_seconds"):
        make_app(nproxy__worker__lost_after_seconds=seconds)
