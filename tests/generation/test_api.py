"""The generation JSON API through the real app: shapes, validation of every control,
authorization (someone else's things are 404), and the sweeper's rules."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from fakes.gemini import make_png
from generation_support import fresh_cycle
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.generation.models import Generation, GenerationStatus
from nproxy_core.generation.settings import GenerationSettings
from nproxy_core.generation.sweeper import sweep
from nproxy_core.generation.tasks import run_generation
from nproxy_core.keypool.errors import FAILURE_MESSAGES
from nproxy_core.quota.models import HoldState, QuotaHold
from nproxy_core.tasks import run_now
from nproxy_core.wiring import find_service


@pytest.fixture
def alice(app, customer_factory, add_key) -> Any:
    add_key(app.app.registry, "demo-key-1")
    return customer_factory(app)


def _upload(customer: Any, size: tuple[int, int] = (32, 32)) -> str:
    response = customer.api.app.post(
        "/api/v1/uploads",
        upload_files=[("file", "in.png", make_png(*size))],
        headers={"X-CSRF-Token": customer.api.csrf()},
    )
    assert response.status_int == 201, response.text
    return response.json["id"]


def test_models_lists_the_enabled_providers_capabilities(alice):
    answer = alice.api.get("/api/v1/models")
    assert answer.status_int == 200
    # The demo provider offers a second, dearer model (units only matter side by side).
    first, pro = answer.json["models"]
    assert (pro["model"], pro["label"], pro["allowed"]) == ("demo-pro", "Demo Pro", True)
    assert {"models": [first]} == {
        "models": [
            {
                "provider": "demo",
                "model": "demo-image-1",
                "label": "Demo",
                "status": "ga",
                "aliases": [],
                "allowed": True,
                "units": {name: 1 for name in ("square", "portrait", "landscape", "tall", "wide")},
                "modes": ["text_to_image", "image_to_image"],
                "resolutions": [
                    {
                        "id": "square",
                        "label": "Square",
                        "aspect_ratio": "1:1",
                        "width": 512,
                        "height": 512,
                        "units": 1,
                    },
                    {
                        "id": "portrait",
                        "label": "Portrait",
                        "aspect_ratio": "3:4",
                        "width": 384,
                        "height": 512,
                        "units": 1,
                    },
                    {
                        "id": "landscape",
                        "label": "Landscape",
                        "aspect_ratio": "4:3",
                        "width": 512,
                        "height": 384,
                        "units": 1,
                    },
                    {
                        "id": "tall",
                        "label": "Tall",
                        "aspect_ratio": "9:16",
                        "width": 288,
                        "height": 512,
                        "units": 1,
                    },
                    {
                        "id": "wide",
                        "label": "Wide",
                        "aspect_ratio": "16:9",
                        "width": 512,
                        "height": 288,
                        "units": 1,
                    },
                ],
                "max_batch": 4,
                "supports_strength": True,
                "max_input_images": 3,
            }
        ]
    }


def test_routes_need_a_login(api):
    for url in ("/api/v1/models", "/api/v1/conversations", f"/api/v1/generations/{uuid.uuid4()}"):
        answer = api.get(url)
        assert answer.status_int == 401
        assert answer.json["error"]["code"] == "not_authenticated"


def test_conversations_are_created_listed_newest_first_and_titled(alice):
    first = alice.api.post("/api/v1/conversations", {"title": "  Cats   and dogs "})
    assert first.status_int == 201
    assert first.json["title"] == "Cats and dogs"
    second = alice.conversation()
    submitted = alice.submit(second, prompt="A lighthouse at dusk", resolution="square")
    assert submitted.status_int == 202

    listed = alice.api.get("/api/v1/conversations").json["conversations"]
    assert [c["id"] for c in listed] == [second, first.json["id"]]
    # An untitled conversation is named after its first prompt.
    assert listed[0]["title"] == "A lighthouse at dusk"
    assert set(listed[0]) == {"id", "title", "created_at", "updated_at"}


def test_poll_answers_the_documented_shape(alice, app):
    submitted = alice.submit(alice.conversation(), resolution="square", batch_size=2)
    assert submitted.json == {"id": submitted.json["id"], "status": "queued"}
    queued = alice.poll(submitted.json["id"])
    assert queued == {"id": submitted.json["id"], "status": "queued", "images": [], "error": None}

    # The job body, run in this process: the same code the worker runs.
    assert run_now(app.app.registry, run_generation, submitted.json["id"]) == "succeeded"
    done = alice.poll(submitted.json["id"])
    assert done["status"] == "succeeded"
    assert [set(image) for image in done["images"]] == [{"id", "url", "thumb_url", "model"}] * 2
    assert {image["model"] for image in done["images"]} == {"demo-image-1"}
    # Delivered again (a redelivery or a sweep): nothing runs twice.
    assert run_now(app.app.registry, run_generation, submitted.json["id"]) == "skipped"


def test_a_failed_poll_answers_the_code_and_the_servers_message_for_it(app, customer_factory):
    # No key in the pool: the job fails as provider_unavailable.
    bob = customer_factory(app)
    gid = bob.submit(bob.conversation(), resolution="square").json["id"]
    assert run_now(app.app.registry, run_generation, gid) == "failed"

    error = bob.poll(gid)["error"]
    assert error == {"code": "provider_unavailable", "message": FAILURE_MESSAGES[error["code"]]}
    assert "temporarily unavailable" in error["message"]


def test_no_subscription_is_refused(app, customer_factory):
    carol = customer_factory(app, request_limit=None)
    answer = carol.submit(carol.conversation(), resolution="square")
    assert answer.status_int == 402
    assert answer.json["error"]["code"] == "no_active_subscription"


def test_quota_exhausted_for_a_batch_larger_than_what_is_left(app, customer_factory, db):
    dave = customer_factory(app, request_limit=3)
    answer = dave.submit(dave.conversation(), resolution="square", batch_size=4)
    assert answer.status_int == 402
    assert answer.json["error"]["code"] == "quota_exhausted"
    # No exact count in what the user reads.
    assert "3" not in answer.json["error"]["message"]
    assert fresh_cycle(db, dave.cycle.id).reserved == 0
    assert db.scalar(sa.select(sa.func.count()).select_from(Generation)) == 0


@pytest.mark.parametrize(
    ("controls", "field"),
    [
        ({"mode": None}, "mode"),
        ({"mode": "video"}, "mode"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": "x" * 4001}, "prompt"),
        ({"resolution": "8k"}, "resolution"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 5}, "batch_size"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"strength": 0.5}, "strength"),  # text-to-image takes no strength
        ({"input_upload_ids": ["x"]}, "input_upload_ids"),  # nor input images
        ({"mode": "image_to_image"}, "input_upload_ids"),  # image-to-image needs one
        ({"mode": "image_to_image", "input_upload_ids": "abc"}, "input_upload_ids"),
        ({"provider": "nanobanana"}, "provider"),  # installed but not enabled
        ({"model": "nope"}, "model"),
    ],
)
def test_each_control_is_validated(alice, db, controls, field):
    body = {"mode": "text_to_image", "prompt": "a cat", "resolution": "square", **controls}
    body = {k: v for k, v in body.items() if v is not None}
    answer = alice.api.post(f"/api/v1/conversations/{alice.conversation()}/generations", body)
    assert answer.status_int == 400, answer.text
    assert answer.json["error"]["code"] == "validation_error"
    assert field in answer.json["error"]["fields"]
    assert fresh_cycle(db, alice.cycle.id).reserved == 0


def test_image_to_image_controls(alice):
    conversation = alice.conversation()
    uploads = [_upload(alice) for _ in range(4)]
    too_many = alice.submit(conversation, mode="image_to_image", input_upload_ids=uploads)
    assert too_many.status_int == 400
    assert too_many.json["error"]["fields"] == {"input_upload_ids": "too_many"}
    for strength in (-0.1, 1.5, "0.5"):
        bad = alice.submit(
            conversation, mode="image_to_image", input_upload_ids=uploads[:1], strength=strength
        )
        assert bad.status_int == 400
        assert bad.json["error"]["fields"] == {"strength": "out_of_range"}
    good = alice.submit(
        conversation,
        mode="image_to_image",
        input_upload_ids=uploads[:3],
        strength=1,
        resolution="wide",
    )
    assert good.status_int == 202, good.text


def test_someone_elses_things_are_not_found(app, alice, customer_factory):
    conversation = alice.conversation()
    upload = _upload(alice)
    submitted = alice.submit(
        conversation, mode="image_to_image", input_upload_ids=[upload], resolution="square"
    )
    assert run_now(app.app.registry, run_generation, submitted.json["id"]) == "succeeded"
    image_url = alice.poll(submitted.json["id"])["images"][0]["url"]
    assert alice.api.get(image_url).status_int == 200

    mallory = customer_factory(app)
    for url in (
        f"/api/v1/conversations/{conversation}",
        f"/api/v1/generations/{submitted.json['id']}",
        image_url,
        f"/media/{upload}",
        "/api/v1/conversations/not-a-uuid",
        f"/api/v1/generations/{uuid.uuid4()}",
    ):
        answer = mallory.api.get(url)
        assert answer.status_int == 404, url
    into_theirs = mallory.submit(conversation, resolution="square")
    assert into_theirs.status_int == 404
    assert into_theirs.json["error"]["code"] == "not_found"
    with_their_upload = mallory.submit(
        mallory.conversation(), mode="image_to_image", input_upload_ids=[upload]
    )
    assert with_their_upload.status_int == 404
    listed = mallory.api.get("/api/v1/conversations").json["conversations"]
    assert conversation not in {c["id"] for c in listed}

    # Admins may see any image (for support), through the media route only.
    admin = customer_factory(app, admin=True)
    assert admin.api.get(image_url).status_int == 200


# --- the sweeper ---------------------------------------------------------------------------------


def _age(db: Any, gid: str, **values: Any) -> None:
    db.execute(sa.update(Generation).where(Generation.id == uuid.UUID(gid)).values(**values))
    db.commit()


def test_sweeper_resends_jobs_left_queued(app, alice, db):
    registry = app.app.registry
    settings = GenerationSettings(requeue_after_seconds=60)
    fresh = alice.submit(alice.conversation(), resolution="square").json["id"]
    lost = alice.submit(alice.conversation(), resolution="square").json["id"]
    _age(db, lost, enqueued_at=utcnow() - dt.timedelta(minutes=5))
    sent: list[str] = []

    report = sweep(find_service(registry, IDatabase).session_factory, settings, sent.append)
    assert sent == [lost] and report.resent == 1
    # Sent once per requeue period, not at every sweep.
    assert (
        sweep(find_service(registry, IDatabase).session_factory, settings, sent.append).resent == 0
    )
    assert fresh not in sent


def test_sweeper_reruns_expired_leases_and_gives_up_after_max_attempts(app, alice, db):
    registry = app.app.registry
    settings = GenerationSettings(requeue_after_seconds=1, max_attempts=3)
    long_ago = utcnow() - dt.timedelta(minutes=5)
    dead = alice.submit(alice.conversation(), resolution="square").json["id"]
    _age(
        db,
        dead,
        status=GenerationStatus.RUNNING,
        lease_owner="gone",
        lease_expires_at=long_ago,
        attempts=1,
        enqueued_at=long_ago,
    )
    hopeless = alice.submit(alice.conversation(), resolution="square", batch_size=2).json["id"]
    _age(
        db,
        hopeless,
        status=GenerationStatus.RUNNING,
        lease_owner="gone",
        lease_expires_at=long_ago,
        attempts=3,
        enqueued_at=long_ago,
    )
    sent: list[str] = []

    report = sweep(find_service(registry, IDatabase).session_factory, settings, sent.append)
    assert sent == [dead]
    assert report.failed == 1
    db.expire_all()
    given_up = db.get(Generation, uuid.UUID(hopeless))
    assert given_up.status == GenerationStatus.FAILED
    assert given_up.error_code == "provider_unavailable"
    assert db.get(QuotaHold, given_up.quota_hold_id).state == HoldState.RELEASED
    assert fresh_cycle(db, alice.cycle.id).reserved == 1  # only the job still to run

    # The re-sent job runs again (its lease expired) and completes.
    assert run_now(registry, run_generation, dead) == "succeeded"
    assert db.get(Generation, uuid.UUID(dead)).attempts == 2


def test_sweeper_settles_holds_of_finished_jobs(app, alice, db):
    registry = app.app.registry
    gid = alice.submit(alice.conversation(), resolution="square").json["id"]
    # A finished job whose hold was left held (a manual change, or a bug).
    _age(db, gid, status=GenerationStatus.FAILED, finished_at=utcnow())

    report = sweep(
        find_service(registry, IDatabase).session_factory, GenerationSettings(), lambda _: None
    )
    assert report.settled == 1
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (0, 0)
