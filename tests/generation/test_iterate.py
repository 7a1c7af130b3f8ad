"""Iterating on results and keeping them (issue 13): generated images as inputs, retry,
renaming and deleting conversations, the library, and what ``/api/v1/me`` says fits."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from generation_support import fresh_cycle
from nproxy_core.generation.models import Conversation, Generation, Message
from nproxy_core.generation.tasks import run_generation
from nproxy_core.tasks import run_now
from nproxy_core.uploads.models import Upload


@pytest.fixture
def alice(app, customer_factory, add_key) -> Any:
    add_key(app.app.registry, "demo-key-1")
    return customer_factory(app)


def _made(app: Any, customer: Any, conversation: str, **controls: Any) -> dict[str, Any]:
    """Submit, run the job here, and answer the finished generation."""
    submitted = customer.submit(conversation, **{"resolution": "square", **controls})
    assert submitted.status_int == 202, submitted.text
    assert run_now(app.app.registry, run_generation, submitted.json["id"]) == "succeeded"
    return customer.poll(submitted.json["id"])


def _count(db: Any, model: Any) -> int:
    db.expire_all()
    return db.scalar(sa.select(sa.func.count()).select_from(model))


# --- generated images as inputs -------------------------------------------------------------------


def test_a_generated_image_is_an_input_of_the_next_turn(app, alice, db):
    conversation = alice.conversation()
    first = _made(app, alice, conversation, prompt="a red bicycle")
    image_id = first["images"][0]["id"]

    refined = _made(
        app,
        alice,
        conversation,
        mode="image_to_image",
        prompt="the same bicycle, in the snow",
        input_image_ids=[image_id],
    )
    assert refined["status"] == "succeeded"
    messages = alice.api.get(f"/api/v1/conversations/{conversation}").json["messages"]
    inputs = messages[-1]["inputs"]
    assert len(inputs) == 1
    # The input is a copy of its own: it survives the deletion of the image it came from.
    assert inputs[0]["id"] != image_id
    assert alice.api.get(inputs[0]["url"]).status_int == 200


def test_someone_elses_image_as_input_is_not_found_and_reserves_nothing(
    app, alice, customer_factory, db
):
    theirs = _made(app, alice, alice.conversation())["images"][0]["id"]
    mallory = customer_factory(app)
    uploads_before = _count(db, Upload)

    for ids in ([theirs], [str(uuid.uuid4())], ["not-a-uuid"]):
        answer = mallory.submit(
            mallory.conversation(), mode="image_to_image", input_image_ids=ids, resolution="square"
        )
        assert answer.status_int == 404, ids
        assert answer.json["error"]["code"] == "not_found"
    cycle = fresh_cycle(db, mallory.cycle.id)
    assert (cycle.reserved, cycle.used) == (0, 0)
    assert _count(db, Upload) == uploads_before
    assert db.scalar(sa.select(sa.func.count()).where(Generation.user_id == mallory.user.id)) == 0


@pytest.mark.parametrize(
    ("controls", "reason"),
    [
        ({"input_image_ids": ["x"]}, "not_allowed"),  # text-to-image takes no inputs
        ({"mode": "image_to_image", "input_image_ids": "x"}, "invalid"),
        ({"mode": "image_to_image", "input_image_ids": ["a", "a"]}, "invalid"),
        ({"mode": "image_to_image", "input_image_ids": ["a", "b", "c", "d"]}, "too_many"),
    ],
)
def test_input_image_ids_are_validated(alice, controls, reason):
    answer = alice.submit(alice.conversation(), **controls)
    assert answer.status_int == 400
    assert answer.json["error"]["fields"] == {"input_image_ids": reason}


# --- retry ----------------------------------------------------------------------------------------


def test_retry_makes_a_new_generation_with_the_same_prompt_and_controls(app, alice, db):
    conversation = alice.conversation()
    first = _made(app, alice, conversation, prompt="a fox", batch_size=2, resolution="wide")

    again = alice.api.post(f"/api/v1/generations/{first['id']}/retry")
    assert again.status_int == 202, again.text
    assert again.json["status"] == "queued"
    assert again.json["conversation_id"] == conversation
    assert again.json["id"] != first["id"]
    # Its quota is held like any submission's.
    assert fresh_cycle(db, alice.cycle.id).reserved == 2
    assert run_now(app.app.registry, run_generation, again.json["id"]) == "succeeded"

    messages = alice.api.get(f"/api/v1/conversations/{conversation}").json["messages"]
    assert [m["prompt"] for m in messages] == ["a fox", "a fox"]
    assert {(m["resolution"], m["batch_size"]) for m in messages} == {("wide", 2)}
    assert len(messages[-1]["generations"][0]["images"]) == 2


def test_retry_of_someone_elses_generation_is_not_found(app, alice, customer_factory, db):
    generation = _made(app, alice, alice.conversation())
    mallory = customer_factory(app)
    for gid in (generation["id"], str(uuid.uuid4()), "nope"):
        answer = mallory.api.post(f"/api/v1/generations/{gid}/retry")
        assert answer.status_int == 404
    assert fresh_cycle(db, mallory.cycle.id).reserved == 0


def test_retry_without_quota_is_refused_with_nothing_written(app, customer_factory, add_key, db):
    add_key(app.app.registry, "demo-key-1")
    erin = customer_factory(app, request_limit=3)
    generation = _made(app, erin, erin.conversation(), batch_size=2)
    answer = erin.api.post(f"/api/v1/generations/{generation['id']}/retry")
    assert answer.status_int == 402
    assert answer.json["error"]["code"] == "quota_exhausted"
    assert answer.json["error"]["message"].startswith("Not enough units left for 2 images")
    assert _count(db, Generation) == 1


def test_a_retry_sent_again_with_its_idempotency_key_makes_one_generation(app, alice, db):
    conversation = alice.conversation()
    first = _made(app, alice, conversation, prompt="a fox")
    other = _made(app, alice, conversation, prompt="a hen")
    key = {"Idempotency-Key": "regenerate-once"}
    path = f"/api/v1/generations/{first['id']}/retry"

    again = alice.api.post(path, headers=key)
    assert again.status_int == 202, again.text
    # The answer was lost on the way; the chat sends the same click with the same key.
    resent = alice.api.post(path, headers=key)
    assert resent.status_int == 202
    assert resent.json == again.json
    assert _count(db, Generation) == 3
    assert fresh_cycle(db, alice.cycle.id).reserved == 1

    # The key names that retry: a retry of another generation, or a submit, is refused.
    for refused in (
        alice.api.post(f"/api/v1/generations/{other['id']}/retry", headers=key),
        alice.submit(conversation, resolution="square", prompt="a fox", headers=key),
    ):
        assert refused.status_int == 422
        assert refused.json["error"]["code"] == "idempotency_mismatch"
    assert _count(db, Generation) == 3
    assert fresh_cycle(db, alice.cycle.id).reserved == 1


def test_concurrent_retries_under_one_key_make_one_generation(app, alice, db):
    first = _made(app, alice, alice.conversation())
    answers = alice.post_concurrently(
        f"/api/v1/generations/{first['id']}/retry", 12, headers={"Idempotency-Key": "one-click"}
    )
    assert {answer.status_int for answer in answers} == {202}
    assert len({answer.json["id"] for answer in answers}) == 1
    assert _count(db, Generation) == 2
    assert fresh_cycle(db, alice.cycle.id).reserved == 1


# --- honest quota ---------------------------------------------------------------------------------


def test_me_tells_the_largest_batch_that_fits_now(app, customer_factory, add_key, db):
    add_key(app.app.registry, "demo-key-1")
    frank = customer_factory(app, request_limit=300)
    # max_units_now is capped at the dearest full batch (demo-pro's 4 images at 6 units).
    assert frank.api.get("/api/v1/me").json["quota"] == {
        "bucket": 100,
        "max_batch_now": 4,
        "max_units_now": 24,
    }

    small = customer_factory(app, request_limit=3)
    assert small.api.get("/api/v1/me").json["quota"] == {
        "bucket": 100,
        "max_batch_now": 3,
        "max_units_now": 3,
    }
    _made(app, small, small.conversation(), batch_size=2)
    assert small.api.get("/api/v1/me").json["quota"]["max_batch_now"] == 1

    nobody = customer_factory(app, request_limit=None)
    assert nobody.api.get("/api/v1/me").json["quota"] == {
        "bucket": 0,
        "max_batch_now": 0,
        "max_units_now": 0,
    }


def test_a_batch_that_does_not_fit_says_so_and_a_used_up_period_says_that(
    app, customer_factory, add_key
):
    add_key(app.app.registry, "demo-key-1")
    gina = customer_factory(app, request_limit=2)
    answer = gina.submit(gina.conversation(), resolution="square", batch_size=4)
    assert answer.json["error"]["message"] == (
        "Not enough units left for 4 images \u2014 try fewer, or renew your plan or buy a "
        "credit pack to continue."
    )
    _made(app, gina, gina.conversation(), batch_size=2)
    answer = gina.submit(gina.conversation(), resolution="square")
    assert answer.status_int == 402
    assert "used up" in answer.json["error"]["message"]


# --- conversations --------------------------------------------------------------------------------


def test_a_conversation_is_renamed(alice, customer_factory, app):
    conversation = alice.conversation("Old name")
    renamed = alice.api.patch(f"/api/v1/conversations/{conversation}", {"title": "  New   name "})
    assert renamed.status_int == 200
    assert renamed.json["title"] == "New name"
    assert alice.api.get(f"/api/v1/conversations/{conversation}").json["title"] == "New name"

    for body in ({"title": "   "}, {}, {"title": 3}, {"title": "x" * 201}):
        refused = alice.api.patch(f"/api/v1/conversations/{conversation}", body)
        assert refused.status_int == 400, body
        assert refused.json["error"]["fields"] == {
            "title": refused.json["error"]["fields"]["title"]
        }

    mallory = customer_factory(app)
    theirs = mallory.api.patch(f"/api/v1/conversations/{conversation}", {"title": "Mine"})
    assert theirs.status_int == 404


def test_deleting_a_conversation_deletes_its_images_and_uploads_from_storage(
    app, alice, customer_factory, db, media_root
):
    from pathlib import Path

    conversation = alice.conversation()
    first = _made(app, alice, conversation)
    upload = alice.api.app.post(
        "/api/v1/uploads",
        upload_files=[("file", "in.png", _png())],
        headers={"X-CSRF-Token": alice.api.csrf()},
    ).json["id"]
    second = _made(app, alice, conversation, mode="image_to_image", input_upload_ids=[upload])
    urls = [i["url"] for g in (first, second) for i in g["images"]] + [f"/media/{upload}"]
    kept = _made(app, alice, alice.conversation())  # another conversation stays whole
    for url in urls:
        assert alice.api.get(url).status_int == 200
    stored_before = {p for p in Path(media_root).rglob("*") if p.is_file()}

    mallory = customer_factory(app)
    assert mallory.api.delete(f"/api/v1/conversations/{conversation}").status_int == 404

    assert alice.api.delete(f"/api/v1/conversations/{conversation}").status_int == 204
    for url in urls:
        assert alice.api.get(url).status_int == 404, url
    assert alice.api.get(f"/api/v1/conversations/{conversation}").status_int == 404
    assert alice.api.get(kept["images"][0]["url"]).status_int == 200
    stored_after = {p for p in Path(media_root).rglob("*") if p.is_file()}
    # Every image with its thumbnail, and the upload.
    assert len(stored_before - stored_after) == len(urls) + 2
    db.expire_all()
    assert (
        db.scalar(
            sa.select(sa.func.count()).where(Message.conversation_id == uuid.UUID(conversation))
        )
        == 0
    )
    assert db.get(Conversation, uuid.UUID(conversation)) is None
    assert alice.api.delete(f"/api/v1/conversations/{conversation}").status_int == 404


def test_deleting_a_conversation_releases_the_quota_of_unfinished_jobs(app, alice, db):
    conversation = alice.conversation()
    assert alice.submit(conversation, resolution="square", batch_size=3).status_int == 202
    assert fresh_cycle(db, alice.cycle.id).reserved == 3
    assert alice.api.delete(f"/api/v1/conversations/{conversation}").status_int == 204
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.reserved, cycle.used) == (0, 0)


# --- the library ----------------------------------------------------------------------------------


def test_the_library_pages_through_every_image_newest_first(app, alice, customer_factory, db):
    made, conversations = [], []
    for n in range(3):
        conversations.append(alice.conversation())
        made.append(_made(app, alice, conversations[-1], prompt=f"picture {n}", batch_size=2))
    newest_first = [i["id"] for g in reversed(made) for i in reversed(g["images"])]

    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/v1/images?limit=4" + (f"&before={cursor}" if cursor else "")
        page = alice.api.get(url)
        assert page.status_int == 200, page.text
        seen.extend(page.json["images"])
        pages += 1
        cursor = page.json["next"]
        if cursor is None:
            break
    assert pages == 2
    # Images of one batch share a moment; the id breaks the tie, so the order is total.
    created = [(i["created_at"], i["id"]) for i in seen]
    assert created == sorted(created, reverse=True)
    assert sorted(i["id"] for i in seen) == sorted(newest_first)
    first = seen[0]
    assert set(first) >= {
        "id",
        "url",
        "generation_id",
        "conversation_id",
        "prompt",
        "created_at",
        "width",
        "height",
    }
    assert first["prompt"] == "picture 2"
    assert first["conversation_id"] == conversations[-1]
    assert first["generation_id"] == made[-1]["id"]

    assert customer_factory(app).api.get("/api/v1/images").json == {"images": [], "next": None}
    for bad in ("before=%%%", "before=bm90LWEtY3Vyc29y", "limit=0", "limit=101", "limit=x"):
        assert alice.api.get(f"/api/v1/images?{bad}").status_int == 400, bad


def _png() -> bytes:
    from fakes.gemini import make_png

    return make_png(24, 24)
