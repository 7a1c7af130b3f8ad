"""The OpenAI provider end to end: enabled beside the demo provider, a key in the pool, a
submission from the chat API naming ``provider: openai`` made by a real worker process against
the fake OpenAI server, and the images charged their units."""

from __future__ import annotations

from typing import Any

import pytest

from fakes.gemini import make_png
from fakes.openai_images import FakeOpenAI
from generation_support import fresh_cycle, wait_for_generation
from nproxy_core.generation.models import GenerationStatus

pytestmark = pytest.mark.slow

KEY = "sk-proj-fake-0123456789abcdef"


def _settings(worker_settings: dict[str, Any], fake: FakeOpenAI) -> dict[str, Any]:
    return {
        **worker_settings,
        "nproxy.providers": "demo openai",
        "openai.api_base": fake.base_url,
        "openai.timeout_seconds": "10",
        "openai.connect_timeout_seconds": "2",
    }


def test_images_from_openai_are_charged_their_units(
    make_app, worker_settings, start_worker, customer_factory, add_key, db, fake
):
    settings = _settings(worker_settings, fake)
    app = make_app(**settings)
    add_key(app.app.registry, KEY, provider="openai")
    start_worker(**settings)
    alice = customer_factory(app)

    # The chat lists the model with its presets, sizes and units (one unit = 0.039 USD).
    models = alice.api.get("/api/v1/models").json["models"]
    openai = next(m for m in models if m["provider"] == "openai")
    assert (openai["model"], openai["label"]) == ("gpt-image-1", "GPT Image 1")
    assert openai["supports_strength"] is False
    assert openai["max_input_images"] == 16
    resolutions = {r["id"]: r for r in openai["resolutions"]}
    assert (resolutions["landscape_high"]["width"], resolutions["landscape_high"]["height"]) == (
        1536,
        1024,
    )
    # 0.25 / 0.039 = 6.4; 0.167 / 0.039 = 4.3; 0.042 / 0.039 = 1.1; 0.011: at least one.
    assert openai["units"]["landscape_high"] == 6
    assert openai["units"]["square_high"] == 4
    assert openai["units"]["square"] == 1
    assert openai["units"]["square_low"] == 1

    conversation = alice.conversation("openai")
    submitted = alice.submit(
        conversation,
        provider="openai",
        model="gpt-image-1",
        resolution="square_high",
        batch_size=2,
    )
    assert submitted.status_int == 202, submitted.text
    generation = wait_for_generation(db, submitted.json["id"])
    assert generation.status == GenerationStatus.SUCCEEDED, generation.error_code

    answer = alice.poll(submitted.json["id"])
    assert len(answer["images"]) == 2
    media = alice.api.get(answer["images"][0]["url"])
    assert media.status_int == 200
    assert media.body == make_png(1024, 1024)
    sent = fake.requests_for(KEY)
    assert len(sent) == 2
    assert {(r.endpoint, r.json["size"], r.json["quality"], r.json["n"]) for r in sent} == {
        ("generations", "1024x1024", "high", 1)
    }
    cycle = fresh_cycle(db, alice.cycle.id)
    assert (cycle.used, cycle.reserved) == (8, 0)

    # An edit of an upload: multipart to /images/edits, a landscape at medium quality.
    upload = alice.api.app.post(
        "/api/v1/uploads",
        upload_files=[("file", "in.png", make_png(64, 48))],
        headers={"X-CSRF-Token": alice.api.csrf()},
    )
    assert upload.status_int == 201, upload.text
    edited = alice.submit(
        conversation,
        provider="openai",
        model="gpt-image-1",
        mode="image_to_image",
        prompt="make it blue",
        resolution="landscape",
        input_upload_ids=[upload.json["id"]],
    )
    assert edited.status_int == 202, edited.text
    generation = wait_for_generation(db, edited.json["id"])
    assert generation.status == GenerationStatus.SUCCEEDED, generation.error_code
    [edit] = [r for r in fake.requests_for(KEY) if r.endpoint == "edits"]
    assert (edit.form["size"], edit.form["quality"], edit.form["prompt"]) == (
        "1536x1024",
        "medium",
        "make it blue",
    )
    [(field, _name, mime, data)] = edit.files
    assert (field, mime) == ("image[]", "image/png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # 0.063 / 0.039 = 1.6: two units.
    assert fresh_cycle(db, alice.cycle.id).used == 10


def test_a_rejected_key_fails_the_image_without_charging(
    make_app, worker_settings, start_worker, customer_factory, add_key, db, fake
):
    settings = _settings(worker_settings, fake)
    app = make_app(**settings)
    add_key(app.app.registry, "invalid_key-0123456789abcdef", provider="openai")
    start_worker(**settings)
    alice = customer_factory(app)

    submitted = alice.submit(
        alice.conversation(), provider="openai", model="gpt-image-1", resolution="square"
    )
    assert submitted.status_int == 202, submitted.text
    generation = wait_for_generation(db, submitted.json["id"])
    assert generation.status == GenerationStatus.FAILED
    answer = alice.poll(submitted.json["id"])
    assert answer["error"]["code"] == "provider_unavailable"
    assert "0123456789abcdef" not in answer["error"]["message"]
    assert fresh_cycle(db, alice.cycle.id).used == 0
