"""The chat's poll in one round trip: a finished generation is answered from this process's
cache after the session check, which reads whether it is still the user's and how many images
it has; so the cache never answers what the database no longer says (polls.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from nproxy_core.accounts.models import User, UserSession
from nproxy_core.accounts.sessions import TOUCH_INTERVAL
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.generation.interfaces import IFinishedGenerations
from nproxy_core.generation.polls import FinishedGenerations
from nproxy_core.generation.services import GenerationState
from nproxy_core.generation.tasks import run_generation
from nproxy_core.tasks import run_now
from nproxy_core.wiring import find_service
from roundtrips import counting


@pytest.fixture
def alice(app, customer_factory, add_key) -> Any:
    add_key(app.app.registry, "demo-key-1")
    return customer_factory(app)


def finished(app: Any, customer: Any, batch_size: int = 1) -> str:
    gid = customer.submit(customer.conversation(), resolution="square", batch_size=batch_size)
    gid = gid.json["id"]
    assert run_now(app.app.registry, run_generation, gid) == "succeeded"
    return gid


def cache_of(app: Any) -> FinishedGenerations:
    return find_service(app.app.registry, IFinishedGenerations)


def test_a_finished_generations_poll_makes_one_round_trip(alice, app, tmp_path: Path):
    gid = finished(app, alice)
    engine = find_service(app.app.registry, IDatabase).engine
    with counting(engine, tmp_path) as trips:
        for _ in range(6):  # psycopg prepares each statement on its 5th use
            first = alice.poll(gid)
        trips.start()
        again = alice.poll(gid)
        assert trips.count == 1
    assert again == first
    assert again["status"] == "succeeded" and len(again["images"]) == 1


def test_an_unfinished_generation_is_read_each_time_and_never_kept(alice, app):
    gid = alice.submit(alice.conversation(), resolution="square").json["id"]
    assert alice.poll(gid)["status"] == "queued"
    assert uuid.UUID(gid) not in cache_of(app)._states
    assert run_now(app.app.registry, run_generation, gid) == "succeeded"
    # Finished since the last poll: read, answered, and kept from now on.
    assert alice.poll(gid)["status"] == "succeeded"
    assert uuid.UUID(gid) in cache_of(app)._states


def test_another_user_polling_a_cached_generation_gets_404(alice, app, customer_factory):
    gid = finished(app, alice)
    alice.poll(gid)  # now in the cache
    mallory = customer_factory(app)
    answer = mallory.api.get(f"/api/v1/generations/{gid}")
    assert answer.status_int == 404
    assert answer.json["error"]["code"] == "not_found"


def test_a_logged_out_session_gets_401_for_a_cached_generation(alice, app):
    gid = finished(app, alice)
    alice.poll(gid)
    copied = alice.session_clone()
    assert alice.api.logout().status_int == 204
    assert copied.get(f"/api/v1/generations/{gid}", status="*").status_int == 401


def test_a_blocked_user_gets_401_for_a_cached_generation(alice, app, db):
    gid = finished(app, alice)
    alice.poll(gid)
    db.execute(sa.update(User).where(User.id == alice.user.id).values(is_blocked=True))
    db.commit()
    assert alice.api.get(f"/api/v1/generations/{gid}").status_int == 401


def test_an_image_deleted_after_the_poll_is_no_longer_answered(alice, app):
    gid = finished(app, alice, batch_size=2)
    first, second = (image["id"] for image in alice.poll(gid)["images"])
    assert alice.api.delete(f"/api/v1/images/{first}").status_int == 204
    assert [image["id"] for image in alice.poll(gid)["images"]] == [second]


def test_a_deleted_conversation_polls_404_after_being_cached(alice, app):
    conversation = alice.conversation()
    gid = alice.submit(conversation, resolution="square").json["id"]
    assert run_now(app.app.registry, run_generation, gid) == "succeeded"
    assert alice.poll(gid)["status"] == "succeeded"
    assert alice.api.delete(f"/api/v1/conversations/{conversation}").status_int == 204
    assert alice.api.get(f"/api/v1/generations/{gid}").status_int == 404


def test_a_generation_deleted_by_another_process_is_not_served(alice, app, db):
    # No request of this process deleted it (another web process did, or an admin by hand).
    gid = finished(app, alice)
    alice.poll(gid)
    db.execute(sa.text("DELETE FROM generation_images WHERE generation_id = :g"), {"g": gid})
    db.commit()
    assert alice.poll(gid)["images"] == []


def test_a_read_write_request_marks_a_session_seen_after_the_touch_interval(alice, app, db):
    long_ago = utcnow() - TOUCH_INTERVAL - dt.timedelta(minutes=1)
    db.execute(sa.update(UserSession).values(last_seen_at=long_ago))
    db.commit()
    assert alice.api.get("/api/v1/me").status_int == 200
    db.expire_all()
    seen = db.scalar(sa.select(UserSession.last_seen_at).where(UserSession.ended_at.is_(None)))
    assert seen > long_ago + dt.timedelta(minutes=1)


def state(n: int = 0, *, images: int = 0) -> GenerationState:
    from nproxy_core.generation.models import GenerationStatus
    from nproxy_core.generation.services import PolledImage

    return GenerationState(
        id=uuid.UUID(int=n),
        status=GenerationStatus.SUCCEEDED,
        prompt="p",
        created_at=utcnow(),
        error_code=None,
        error_message=None,
        images=tuple(PolledImage(uuid.uuid4(), "k", "image/png") for _ in range(images)),
    )


def test_the_cache_answers_only_the_owner_with_the_same_number_of_images():
    cache = FinishedGenerations()
    cache.put(7, state(1, images=2))
    assert cache.get(7, uuid.UUID(int=1), 2) is not None
    assert cache.get(8, uuid.UUID(int=1), 2) is None
    assert cache.get(7, uuid.UUID(int=1), 1) is None
    assert cache.get(7, uuid.UUID(int=2), 0) is None


def test_the_cache_keeps_only_finished_states():
    from nproxy_core.generation.models import GenerationStatus

    cache = FinishedGenerations()
    for status in (GenerationStatus.QUEUED, GenerationStatus.RUNNING):
        cache.put(7, GenerationState(**{**state(1).__dict__, "status": status}))
    assert len(cache) == 0


def test_the_cache_forgets_the_least_recently_asked_for_when_full():
    cache = FinishedGenerations(size=2)
    cache.put(7, state(1))
    cache.put(7, state(2))
    assert cache.get(7, uuid.UUID(int=1), 0) is not None  # 2 is now the oldest asked for
    cache.put(7, state(3))
    assert len(cache) == 2
    assert cache.get(7, uuid.UUID(int=2), 0) is None
    assert cache.get(7, uuid.UUID(int=1), 0) is not None


def test_claiming_a_job_is_one_statement(alice, app):
    from nproxy_core.generation.interfaces import IJobRunner

    gid = alice.submit(alice.conversation(), resolution="square", batch_size=2).json["id"]
    engine = find_service(app.app.registry, IDatabase).engine
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        job = find_service(app.app.registry, IJobRunner).claim(uuid.UUID(gid))
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) == 1 and statements[0].startswith("UPDATE generations")
    assert (job.prompt, job.batch_size, job.resolution, job.with_text) == (
        "a red bicycle",
        2,
        "square",
        False,
    )
    assert job.upload_keys == () and not job.inputs_missing


@pytest.mark.parametrize("quick", [True, False], ids=["the poll's few columns", "the whole user"])
def test_the_identity_made_from_a_session_check_is_the_whole_user(db, user_factory, quick):
    from sqlalchemy.orm import Session

    from nproxy_core.accounts import sessions

    user = user_factory()
    token = sessions.start_session(db, user, ip="127.0.0.1", user_agent="tests")
    db.commit()
    other = Session(bind=db.get_bind())
    try:
        check = sessions.QUICK_SESSION_CHECK if quick else sessions.SESSION_CHECK
        row = sessions.check_session(other, token, idle_limit=dt.timedelta(days=1), statement=check)
        made = sessions.user_of(other, row)
        assert (made.id, made.email, made.password_hash) == (
            user.id,
            user.email,
            user.password_hash,
        )
        assert made in other and not other.dirty and not other.new
        assert sessions.user_of(other, row) is made
    finally:
        other.close()
