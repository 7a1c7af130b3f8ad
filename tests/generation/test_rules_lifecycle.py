"""DESIGN 4.2-4.4 rules of a generation's life, through the real app and the job's own code:
terminal states are final, access ends at ``ends_at`` but an accepted job still completes,
refused submissions change nothing, and no answer a user reads shows exact quota counts."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import monthly_plan_id
from generation_support import fresh_cycle
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.generation.models import Generation, GenerationStatus, Message
from nproxy_core.generation.settings import GenerationSettings
from nproxy_core.generation.sweeper import sweep
from nproxy_core.generation.tasks import run_generation
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.quota.models import HoldState, QuotaHold
from nproxy_core.tasks import run_now
from nproxy_core.wiring import find_service


@pytest.fixture
def keyed_app(app, add_key) -> Any:
    add_key(app.app.registry, "demo-key-1")
    return app


def count(db: Any, model: Any) -> int:
    db.expire_all()
    return db.scalar(sa.select(sa.func.count()).select_from(model))


def generation(db: Any, gid: str) -> Generation:
    db.expire_all()
    return db.get(Generation, uuid.UUID(gid))


def set_generation(db: Any, gid: str, **values: Any) -> None:
    db.execute(sa.update(Generation).where(Generation.id == uuid.UUID(gid)).values(**values))
    db.commit()


# --- terminal states are final ------------------------------------------------------------------


def test_a_failed_job_delivered_again_does_nothing(app, customer_factory, db):
    # No key in the pool: the job fails (provider_unavailable) and gives its quota back.
    alice = customer_factory(app)
    gid = alice.submit(alice.conversation(), resolution="square", batch_size=2).json["id"]
    assert run_now(app.app.registry, run_generation, gid) == "failed"
    failed = generation(db, gid)
    assert (failed.error_code, failed.attempts) == ("provider_unavailable", 1)
    assert (fresh_cycle(db, alice.cycle.id).used, fresh_cycle(db, alice.cycle.id).reserved) == (
        0,
        0,
    )

    # Keys arrive meanwhile; a redelivery or a sweep must still not run the finished job again.
    from nproxy_core.audit import Surface
    from nproxy_core.keypool import services

    services.add_key(
        db,
        find_service(app.app.registry, ISecretBox),
        provider="demo",
        secret="demo-key-late",
        enabled_providers=["demo"],
        actor=services.Actor("tests", Surface.CLI),
    )
    db.commit()
    assert run_now(app.app.registry, run_generation, gid) == "skipped"
    sweep(
        find_service(app.app.registry, IDatabase).session_factory,
        GenerationSettings(),
        lambda _: None,
    )
    after = generation(db, gid)
    assert (after.status, after.attempts, after.images) == (GenerationStatus.FAILED, 1, [])
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (0, 0)
    assert alice.poll(gid)["status"] == "failed"


@pytest.mark.parametrize(
    "terminal", [GenerationStatus.SUCCEEDED, GenerationStatus.PARTIAL, GenerationStatus.FAILED]
)
def test_no_terminal_state_is_ever_claimed_again(keyed_app, customer_factory, db, terminal):
    alice = customer_factory(keyed_app)
    gid = alice.submit(alice.conversation(), resolution="square").json["id"]
    assert run_now(keyed_app.app.registry, run_generation, gid) == "succeeded"
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (1, 0)
    # Whatever the terminal state, even with a lease left behind that has expired and a send
    # made long ago (what the claim and the sweeper look at), nothing runs it again.
    long_ago = utcnow() - dt.timedelta(hours=1)
    set_generation(
        db, gid, status=terminal, lease_expires_at=long_ago, enqueued_at=long_ago, attempts=1
    )
    sent: list[str] = []
    sweep(
        find_service(keyed_app.app.registry, IDatabase).session_factory,
        GenerationSettings(),
        sent.append,
    )
    assert sent == []
    assert run_now(keyed_app.app.registry, run_generation, gid) == "skipped"
    after = generation(db, gid)
    assert (after.status, after.attempts, len(after.images)) == (terminal, 1, 1)
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (1, 0)


# --- cycles: access ends at ends_at, accepted jobs complete -------------------------------------


def test_a_job_accepted_before_the_end_completes_after_it(keyed_app, customer_factory, db):
    alice = customer_factory(keyed_app)
    gid = alice.submit(alice.conversation(), resolution="square", batch_size=2).json["id"]
    # The cycle ends while the job waits in the queue.
    cycle = fresh_cycle(db, alice.cycle.id)
    cycle.ends_at = utcnow() - dt.timedelta(seconds=1)
    db.commit()
    assert alice.api.get("/api/v1/me").json["subscription"]["status"] == "expired"

    assert run_now(keyed_app.app.registry, run_generation, gid) == "succeeded"
    done = alice.poll(gid)
    assert done["status"] == "succeeded" and len(done["images"]) == 2
    assert all(alice.api.get(image["url"]).status_int == 200 for image in done["images"])
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (2, 0)


def test_a_submission_after_the_end_is_refused_and_changes_nothing(keyed_app, customer_factory, db):
    alice = customer_factory(keyed_app)
    conversation = alice.conversation()
    cycle = fresh_cycle(db, alice.cycle.id)
    cycle.ends_at = utcnow() - dt.timedelta(seconds=1)
    db.commit()

    answer = alice.submit(conversation, resolution="square")
    assert answer.status_int == 402
    assert answer.json["error"]["code"] == "no_active_subscription"
    assert count(db, Generation) == count(db, Message) == count(db, QuotaHold) == 0
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (0, 0)


def test_a_cycle_that_has_not_started_gives_no_access_yet(keyed_app, user_factory, db):
    from apiclient import ApiClient
    from nproxy_core.billing.models import BillingCycle

    user = user_factory()
    now = utcnow()
    db.add(
        BillingCycle(
            user_id=user.id,
            starts_at=now + dt.timedelta(days=1),
            ends_at=now + dt.timedelta(days=31),
            period_months=1,
            plan_id=monthly_plan_id(db),
            request_limit=300,
        )
    )
    db.commit()
    api = ApiClient(keyed_app)
    api.login(user.email)
    conversation = api.post("/api/v1/conversations", {}).json["id"]
    answer = api.post(
        f"/api/v1/conversations/{conversation}/generations",
        {"mode": "text_to_image", "prompt": "a cat", "resolution": "square"},
    )
    assert answer.status_int == 402
    assert answer.json["error"]["code"] == "no_active_subscription"
    assert count(db, Generation) == 0


# --- bad input changes nothing ------------------------------------------------------------------


def test_every_refused_submission_writes_nothing(keyed_app, customer_factory, db):
    alice = customer_factory(keyed_app, request_limit=3)
    conversation = alice.conversation()
    before = alice.api.get(f"/api/v1/conversations/{conversation}").json
    url = f"/api/v1/conversations/{conversation}/generations"
    token = alice.api.csrf()
    raw = alice.api.app

    refusals = [
        raw.post(
            url,
            b"{not json",
            content_type="application/json",
            headers={"X-CSRF-Token": token},
            status="*",
        ),
        alice.api.post(url, ["a", "list"]),
        alice.api.post(url, {"mode": "text_to_image", "resolution": "square"}),
        alice.api.post(url, {"mode": "text_to_image", "prompt": "x", "resolution": "8k"}),
        alice.submit(conversation, resolution="square", batch_size=4),  # 402: 3 left
        alice.submit(conversation, resolution="square", headers={"Idempotency-Key": "x" * 500}),
        alice.submit(str(uuid.uuid4()), resolution="square"),  # 404
    ]
    assert [r.status_int for r in refusals] == [400, 400, 400, 400, 402, 400, 404]
    for refused in refusals:
        assert refused.json["error"]["message"], refused.text
    assert count(db, Generation) == count(db, Message) == count(db, QuotaHold) == 0
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (0, 0)
    # Not even the conversation's title or order moved.
    assert alice.api.get(f"/api/v1/conversations/{conversation}").json == before


# --- no exact counts in what a user reads -------------------------------------------------------

LIMIT, USED, RESERVED = 7919, 4253, 1187  # remaining 2479: bucket 40


def shows(number: int, text: str) -> bool:
    return re.search(rf"(?<![\w-]){number}(?![\w-])", text) is not None


def test_no_generation_route_or_chat_page_shows_exact_counts(keyed_app, customer_factory, db):
    alice = customer_factory(keyed_app, request_limit=LIMIT)
    cycle = fresh_cycle(db, alice.cycle.id)
    cycle.used, cycle.reserved = USED, RESERVED
    db.commit()
    conversation = alice.conversation()
    submitted = alice.submit(conversation, resolution="square", batch_size=2)
    assert submitted.status_int == 202
    gid = submitted.json["id"]
    run_now(keyed_app.app.registry, run_generation, gid)
    used, reserved = USED + 2, RESERVED
    texts = [submitted.text] + [
        alice.api.get(path).text
        for path in (
            "/chat",
            f"/chat/{conversation}",
            "/dashboard",
            "/api/v1/me",
            "/api/v1/models",
            "/api/v1/conversations",
            f"/api/v1/conversations/{conversation}",
            f"/api/v1/generations/{gid}",
        )
    ]
    for text in texts:
        for number in (LIMIT, used, reserved, LIMIT - used - reserved, used + reserved):
            assert not shows(number, text), (number, text[:300])

    # The refusals a user reads carry no number of theirs: only the batch they asked for (4),
    # never what is left (3).
    short = customer_factory(keyed_app, request_limit=3)
    exhausted = short.submit(short.conversation(), resolution="square", batch_size=4)
    assert exhausted.json["error"]["code"] == "quota_exhausted"
    none = customer_factory(keyed_app, request_limit=None)
    no_sub = none.submit(none.conversation(), resolution="square")
    assert no_sub.json["error"]["code"] == "no_active_subscription"
    assert re.findall(r"\d+", exhausted.json["error"]["message"]) == ["4"], exhausted.text
    assert not re.search(r"\d", no_sub.json["error"]["message"]), no_sub.text


# --- abandoned holds ----------------------------------------------------------------------------


def test_a_long_queued_job_keeps_its_hold_and_is_charged_when_it_runs(
    keyed_app, customer_factory, db
):
    alice = customer_factory(keyed_app, request_limit=1)
    gid = alice.submit(alice.conversation(), resolution="square").json["id"]
    # The job waited in the queue for three hours (no worker): it is not abandoned.
    hold_id = generation(db, gid).quota_hold_id
    three_hours_ago = utcnow() - dt.timedelta(hours=3)
    db.execute(
        sa.update(QuotaHold).where(QuotaHold.id == hold_id).values(created_at=three_hours_ago)
    )
    db.commit()
    # A sweep (the only thing that releases holds of unfinished jobs) leaves it alone.
    sweep(
        find_service(keyed_app.app.registry, IDatabase).session_factory,
        GenerationSettings(),
        lambda _: None,
    )
    # Its request is still held, so nothing else can take it...
    assert fresh_cycle(db, alice.cycle.id).reserved == 1
    assert alice.submit(alice.conversation(), resolution="square").status_int == 402
    # ...and the image it makes is consumed.
    assert run_now(keyed_app.app.registry, run_generation, gid) == "succeeded"
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (1, 0)
    assert db.get(QuotaHold, hold_id).state == HoldState.SETTLED
