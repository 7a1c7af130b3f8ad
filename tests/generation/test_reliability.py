"""Nothing paid for is lost or counted twice: a worker killed mid-job, a broker restart with
jobs queued, concurrent submissions racing for the last requests, retried submits."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from generation_support import PrivateRabbitMQ, fresh_cycle, wait_for_generation
from nproxy_core.generation.models import Generation, GenerationImage, GenerationStatus
from nproxy_core.quota.models import HoldState, QuotaHold


@pytest.mark.slow
def test_worker_killed_mid_job_completes_exactly_once(
    make_app, worker_settings, start_worker, start_process, customer_factory, add_key, db
):
    overrides = {
        "demo.delay_seconds": "2.5",
        # A short lease, renewed while the job runs: a dead worker's job is free again soon.
        "nproxy.generation.lease_seconds": "2",
        "nproxy.generation.requeue_after_seconds": "1",
        "nproxy.generation.sweep_interval_seconds": "0.5",
    }
    settings = {**worker_settings, **overrides}
    app = make_app(**settings)
    add_key(app.app.registry, "demo-key-1")
    first = start_worker(**overrides)
    alice = customer_factory(app)

    submitted = alice.submit(alice.conversation(), resolution="square", batch_size=2)
    assert submitted.status_int == 202
    gid = submitted.json["id"]
    wait_for_generation(db, gid, states=[GenerationStatus.RUNNING])
    first.kill9()  # in the middle of the provider calls: nothing of the job is finished

    start_process("beat", settings)
    start_worker(**overrides)
    generation = wait_for_generation(db, gid, timeout=90)

    assert generation.status == GenerationStatus.SUCCEEDED
    assert generation.attempts >= 2
    images = db.scalars(sa.select(GenerationImage).where(GenerationImage.generation_id == gid))
    assert sorted(image.n for image in images) == [0, 1]
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (2, 0)
    hold = db.get(QuotaHold, generation.quota_hold_id)
    assert (hold.state, hold.consumed) == (HoldState.SETTLED, 2)
    assert len(alice.poll(gid)["images"]) == 2


@pytest.mark.slow
def test_broker_restart_loses_no_queued_job(
    make_app, worker_settings, start_worker, customer_factory, add_key, db, tmp_path
):
    rabbit = PrivateRabbitMQ(tmp_path / "rabbitmq")
    rabbit.start()
    try:
        overrides = {
            "celery.broker_url": rabbit.url,
            # The sweeper must not cover for a lost message: only the broker can keep them.
            "nproxy.generation.requeue_after_seconds": "3600",
        }
        app = make_app(**{**worker_settings, **overrides})
        add_key(app.app.registry, "demo-key-1")
        alice = customer_factory(app)
        conversation = alice.conversation()
        ids = []
        for n in range(3):
            submitted = alice.submit(conversation, prompt=f"picture {n}", resolution="square")
            assert submitted.status_int == 202
            ids.append(submitted.json["id"])
        assert rabbit.queue_depth() == 3

        rabbit.restart_app()
        assert rabbit.queue_depth() == 3

        start_worker(**overrides)
        for gid in ids:
            assert wait_for_generation(db, gid).status == GenerationStatus.SUCCEEDED
        assert fresh_cycle(db, alice.cycle.id).used == 3
    finally:
        rabbit.stop()


def _submit_concurrently(
    customer: Any,
    conversation: str,
    count: int,
    headers: dict[str, str] | None = None,
    prompt: Any = lambda n: f"cat {n}",
) -> list[Any]:
    return customer.post_concurrently(
        f"/api/v1/conversations/{conversation}/generations",
        count,
        lambda n: {"mode": "text_to_image", "prompt": prompt(n), "resolution": "square"},
        headers,
    )


def test_concurrent_submissions_never_overspend(app, customer_factory, db):
    alice = customer_factory(app, request_limit=10)
    answers = _submit_concurrently(alice, alice.conversation(), 50)

    statuses = Counter(answer.status_int for answer in answers)
    assert statuses == {202: 10, 402: 40}
    assert {a.json["error"]["code"] for a in answers if a.status_int == 402} == {"quota_exhausted"}
    cycle = fresh_cycle(db, alice.cycle.id)
    assert cycle.used + cycle.reserved == 10
    assert db.scalar(sa.select(sa.func.count()).select_from(Generation)) == 10


def test_idempotency_key_returns_the_same_generation(app, customer_factory, db):
    alice = customer_factory(app)
    conversation = alice.conversation()
    first = alice.submit(conversation, resolution="square", headers={"Idempotency-Key": "abc-1"})
    again = alice.submit(conversation, resolution="square", headers={"Idempotency-Key": "abc-1"})
    other = alice.submit(conversation, resolution="square", headers={"Idempotency-Key": "abc-2"})

    assert first.status_int == again.status_int == other.status_int == 202
    assert again.json["id"] == first.json["id"]
    assert other.json["id"] != first.json["id"]
    assert fresh_cycle(db, alice.cycle.id).reserved == 2

    # The same key from another user is another generation.
    bob = customer_factory(app)
    theirs = bob.submit(
        bob.conversation(), resolution="square", headers={"Idempotency-Key": "abc-1"}
    )
    assert theirs.status_int == 202
    assert theirs.json["id"] != first.json["id"]


def test_concurrent_retries_with_one_idempotency_key_make_one_generation(app, customer_factory, db):
    alice = customer_factory(app)
    answers = _submit_concurrently(
        alice,
        alice.conversation(),
        12,
        headers={"Idempotency-Key": "retry-me"},
        prompt=lambda n: "cat",
    )

    assert {answer.status_int for answer in answers} == {202}
    assert len({answer.json["id"] for answer in answers}) == 1
    assert db.scalar(sa.select(sa.func.count()).select_from(Generation)) == 1
    assert fresh_cycle(db, alice.cycle.id).reserved == 1


def test_concurrent_submits_of_two_bodies_under_one_key_make_one_generation(
    app, customer_factory, db
):
    alice = customer_factory(app)
    answers = _submit_concurrently(
        alice,
        alice.conversation(),
        12,
        headers={"Idempotency-Key": "one-key"},
        prompt=lambda n: "a dog" if n % 2 else "a cat",
    )

    assert db.scalar(sa.select(sa.func.count()).select_from(Generation)) == 1
    assert fresh_cycle(db, alice.cycle.id).reserved == 1
    winner = db.scalar(sa.select(Generation))
    prompt = winner.message.prompt
    for n, answer in enumerate(answers):
        mine = "a dog" if n % 2 else "a cat"
        if mine == prompt:
            assert answer.status_int == 202
            assert answer.json["id"] == str(winner.id)
        else:
            assert answer.status_int == 422
            assert answer.json["error"]["code"] == "idempotency_mismatch"


def test_an_idempotency_key_reused_for_another_request_is_refused(app, customer_factory, db):
    alice = customer_factory(app)
    conversation = alice.conversation()
    key = {"Idempotency-Key": "once"}
    first = alice.submit(conversation, resolution="square", headers=key)
    assert first.status_int == 202
    for changed in (
        alice.submit(conversation, resolution="square", prompt="something else", headers=key),
        alice.submit(conversation, resolution="square", batch_size=2, headers=key),
        alice.submit(alice.conversation(), resolution="square", headers=key),
    ):
        assert changed.status_int == 422
        assert changed.json["error"]["code"] == "idempotency_mismatch"
        assert "Idempotency-Key" in changed.json["error"]["message"]
    assert db.scalar(sa.select(sa.func.count()).select_from(Generation)) == 1
    assert fresh_cycle(db, alice.cycle.id).reserved == 1
    # The very same request is still answered with the first generation.
    again = alice.submit(conversation, resolution="square", headers=key)
    assert again.status_int == 202
    assert again.json["id"] == first.json["id"]
