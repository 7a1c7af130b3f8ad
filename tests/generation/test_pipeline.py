"""Submit → real worker process over RabbitMQ → images stored, quota committed; on the local
backend and on S3 (SeaweedFS); batches where some images fail; policy blocks."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from fakes.gemini import BEHAVIOURS, FakeGemini, fake_gemini
from generation_support import fresh_cycle, wait_for_generation
from nproxy_core.generation.models import GenerationImage, GenerationStatus
from nproxy_core.quota.models import HoldState, QuotaHold
from nproxy_core.storage.local import LocalStorage

pytestmark = pytest.mark.slow


def _images(db: Any, generation_id: Any) -> list[GenerationImage]:
    db.expire_all()
    return list(
        db.scalars(
            sa.select(GenerationImage)
            .where(GenerationImage.generation_id == generation_id)
            .order_by(GenerationImage.n)
        )
    )


def test_submit_succeeds_with_images_stored_and_quota_committed(
    make_app, worker_settings, start_worker, customer_factory, add_key, db
):
    app = make_app(**worker_settings)
    add_key(app.app.registry, "demo-key-1")
    start_worker()
    alice = customer_factory(app)
    conversation = alice.conversation("bikes")

    submitted = alice.submit(conversation, resolution="square", batch_size=2)
    assert submitted.status_int == 202, submitted.text
    assert submitted.json["status"] == "queued"

    generation = wait_for_generation(db, submitted.json["id"])
    assert generation.status == GenerationStatus.SUCCEEDED
    assert generation.error_code is None
    assert generation.attempts == 1
    assert generation.started_at and generation.finished_at

    answer = alice.poll(submitted.json["id"])
    assert answer["status"] == "succeeded"
    assert answer["error"] is None
    assert len(answer["images"]) == 2
    storage = LocalStorage(worker_settings["storage.local.path"])
    rows = _images(db, generation.id)
    for n, (image, row) in enumerate(zip(answer["images"], rows, strict=True)):
        assert image["url"] == f"/media/{image['id']}"
        assert row.storage_key == f"generations/{alice.user.id}/{generation.id}/{n}.png"
        assert storage.exists(row.storage_key)
        media = alice.api.get(image["url"])
        assert media.status_int == 200
        assert media.content_type == "image/png"
        assert media.body == storage.get(row.storage_key)
        assert (row.width, row.height) == (512, 512)

    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (2, 0)
    hold = db.get(QuotaHold, generation.quota_hold_id)
    assert (hold.state, hold.consumed) == (HoldState.SETTLED, 2)

    # The conversation shows the turn with its controls and results.
    thread = alice.api.get(f"/api/v1/conversations/{conversation}").json
    [message] = thread["messages"]
    assert message["prompt"] == "a red bicycle"
    assert message["batch_size"] == 2
    assert message["generations"][0]["status"] == "succeeded"
    assert [i["id"] for i in message["generations"][0]["images"]] == [
        i["id"] for i in answer["images"]
    ]


def test_image_to_image_on_s3_storage(
    make_app, worker_settings, start_worker, customer_factory, add_key, db, s3_server
):
    bucket = s3_server.new_bucket()
    settings = {**worker_settings, **s3_server.settings(bucket)}
    app = make_app(**settings)
    add_key(app.app.registry, "demo-key-1")
    start_worker(**s3_server.settings(bucket))
    alice = customer_factory(app)
    conversation = alice.conversation()

    from fakes.gemini import make_png

    upload = alice.api.app.post(
        "/api/v1/uploads",
        upload_files=[("file", "in.png", make_png(64, 48))],
        headers={"X-CSRF-Token": alice.api.csrf()},
    )
    assert upload.status_int == 201, upload.text
    submitted = alice.submit(
        conversation,
        mode="image_to_image",
        prompt="make it blue",
        resolution="landscape",
        strength=0.3,
        input_upload_ids=[upload.json["id"]],
    )
    assert submitted.status_int == 202, submitted.text
    generation = wait_for_generation(db, submitted.json["id"])
    assert generation.status == GenerationStatus.SUCCEEDED

    [row] = _images(db, generation.id)
    key = f"generations/{alice.user.id}/{generation.id}/0.png"
    assert row.storage_key == key
    assert key in s3_server.keys(bucket)
    # The owner is sent to a short-lived presigned URL that the S3 server honours.
    media = alice.api.get(f"/media/{row.id}")
    assert media.status_int == 302
    fetched = httpx.get(media.headers["Location"], trust_env=False)
    assert fetched.status_code == 200
    assert fetched.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert fresh_cycle(db, alice.cycle.id).used == 1


@pytest.fixture
def gemini() -> Any:
    with fake_gemini() as server:
        yield server


def _alternate(first: str, then: str) -> Any:
    """A behaviour answering ``first`` to the first call and ``then`` to every later one."""
    counter = itertools.count()
    lock = threading.Lock()

    def behaviour(request: Any) -> Any:
        with lock:
            n = next(counter)
        return BEHAVIOURS[first if n == 0 else then](request)

    return behaviour


def _nanobanana(worker_settings: dict[str, Any], gemini: FakeGemini) -> dict[str, Any]:
    return {
        **worker_settings,
        "nproxy.providers": "nanobanana",
        "nanobanana.api_base": gemini.base_url,
        "nanobanana.timeout_seconds": "10",
        "nanobanana.connect_timeout_seconds": "2",
    }


@pytest.mark.parametrize(
    ("failure", "code"),
    [("safety", "content_policy"), ("unavailable", "provider_unavailable")],
)
def test_partial_batch_consumes_only_the_successes(
    failure, code, make_app, worker_settings, start_worker, customer_factory, add_key, db, gemini
):
    settings = _nanobanana(worker_settings, gemini)
    app = make_app(**settings)
    # One key: one image comes back, then the provider blocks (user-caused) or fails (the pool
    # is exhausted: a 503 cools the only key down).
    add_key(app.app.registry, "gemini-key-1", provider="nanobanana")
    gemini.behave("gemini-key-1", _alternate("success", failure))
    start_worker(**{k: v for k, v in settings.items() if k.startswith(("nproxy.prov", "nanob"))})
    alice = customer_factory(app)
    resolution = alice.api.get("/api/v1/models").json["models"][0]["resolutions"][0]["id"]

    submitted = alice.submit(alice.conversation(), resolution=resolution, batch_size=3)
    assert submitted.status_int == 202, submitted.text
    generation = wait_for_generation(db, submitted.json["id"])

    assert generation.status == GenerationStatus.PARTIAL
    answer = alice.poll(submitted.json["id"])
    assert len(answer["images"]) == 1
    assert answer["error"]["code"] == code
    assert "key" not in answer["error"]["message"].lower()
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (1, 0)


def test_policy_block_fails_and_consumes_nothing(
    make_app, worker_settings, start_worker, customer_factory, add_key, db, gemini
):
    settings = _nanobanana(worker_settings, gemini)
    app = make_app(**settings)
    add_key(app.app.registry, "gemini-key-1", provider="nanobanana")
    add_key(app.app.registry, "gemini-key-2", provider="nanobanana")
    gemini.behave("gemini-key-1", "prompt_blocked")
    gemini.behave("gemini-key-2", "prompt_blocked")
    start_worker(**{k: v for k, v in settings.items() if k.startswith(("nproxy.prov", "nanob"))})
    alice = customer_factory(app)
    resolution = alice.api.get("/api/v1/models").json["models"][0]["resolutions"][0]["id"]

    submitted = alice.submit(alice.conversation(), resolution=resolution, batch_size=2)
    generation = wait_for_generation(db, submitted.json["id"])

    assert generation.status == GenerationStatus.FAILED
    answer = alice.poll(submitted.json["id"])
    assert answer["images"] == []
    assert answer["error"]["code"] == "content_policy"
    assert "content policy" in answer["error"]["message"]
    # User-caused: no failover to the second key, and nothing consumed.
    assert len(gemini.requests) == 2
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (0, 0)
    hold = db.get(QuotaHold, generation.quota_hold_id)
    assert (hold.state, hold.consumed) == (HoldState.SETTLED, 0)
