"""Several models in one conversation through a real worker (DESIGN 4.12, 4.13): each image is
charged its model's units, records the provider and model that made it, and an image made by a
thinking model goes back to it with its thought signature when used as an input again."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from fakes.gemini import fake_gemini, thought_signature
from fakes.openai_images import fake_openai
from generation_support import fresh_cycle, wait_for_generation
from nproxy_core.generation.models import GenerationImage, GenerationStatus
from nproxy_core.storage.local import LocalStorage

pytestmark = pytest.mark.slow

FLASH, PRO = "gemini-2.5-flash-image", "gemini-3-pro-image-preview"


@pytest.fixture
def gemini() -> Any:
    with fake_gemini() as server:
        yield server


@pytest.fixture
def openai() -> Any:
    with fake_openai() as server:
        yield server


def _made(customer: Any, db: Any, conversation: str, **controls: Any) -> Any:
    submitted = customer.submit(conversation, **controls)
    assert submitted.status_int == 202, submitted.text
    generation = wait_for_generation(db, submitted.json["id"])
    assert generation.status == GenerationStatus.SUCCEEDED, generation.error_message
    return generation


def test_flash_pro_4k_and_gpt_image_in_one_conversation_each_charged_its_units(
    make_app, worker_settings, start_worker, customer_factory, add_key, db, gemini, openai
):
    settings = {
        **worker_settings,
        "nproxy.providers": "nanobanana openai",
        "nanobanana.api_base": gemini.base_url,
        "nanobanana.timeout_seconds": "10",
        "nanobanana.connect_timeout_seconds": "2",
        "openai.api_base": openai.base_url,
        "openai.timeout_seconds": "10",
    }
    app = make_app(**settings)
    add_key(app.app.registry, "gemini-key-1", provider="nanobanana")
    add_key(app.app.registry, "sk-test-0123456789abcdef", provider="openai")
    start_worker(**settings)
    alice = customer_factory(app, request_limit=30)
    conversation = alice.conversation()

    flash = _made(alice, db, conversation, model=FLASH, resolution="square", batch_size=2)
    assert fresh_cycle(db, alice.cycle.id).used == 2  # 2 x 1 unit
    pro = _made(alice, db, conversation, model=PRO, resolution="square_4k")
    assert fresh_cycle(db, alice.cycle.id).used == 8  # + 1 x 6 units

    db.expire_all()
    [pro_image] = db.scalars(
        sa.select(GenerationImage).where(GenerationImage.generation_id == pro.id)
    ).all()
    flash_images = db.scalars(
        sa.select(GenerationImage).where(GenerationImage.generation_id == flash.id)
    ).all()
    assert {(i.provider, i.model) for i in flash_images} == {("nanobanana", FLASH)}
    assert all(i.continuation is None for i in flash_images)
    assert (pro_image.provider, pro_image.model) == ("nanobanana", PRO)
    data = LocalStorage(worker_settings["storage.local.path"]).get(pro_image.storage_key)
    assert pro_image.continuation["thoughtSignature"] == thought_signature(data)

    # Iterating on the Pro image: Pro gets it back as its own turn, signature and all.
    gemini.clear()
    _made(
        alice,
        db,
        conversation,
        model=PRO,
        mode="image_to_image",
        prompt="the same, at night",
        resolution="square",
        input_image_ids=[str(pro_image.id)],
    )
    [sent] = gemini.requests
    model_turns = [t for t in sent.json["contents"] if t.get("role") == "model"]
    assert [p["thoughtSignature"] for t in model_turns for p in t["parts"]] == [
        thought_signature(data)
    ]
    assert sent.json["contents"][0]["parts"][0]["text"] == "a red bicycle"
    assert sent.parts[-1]["text"] == "the same, at night"
    assert fresh_cycle(db, alice.cycle.id).used == 11  # + 1 x 3 units (Pro at 1K)

    # GPT Image 1 (medium square: 1 unit) in the same conversation.
    gpt = _made(alice, db, conversation, provider="openai", model="gpt-image-1")
    assert fresh_cycle(db, alice.cycle.id).used == 12
    assert alice.poll(str(gpt.id))["images"][0]["model"] == "gpt-image-1"

    # Flash is given the Pro image as a plain input: the signature is Pro's alone.
    gemini.clear()
    _made(
        alice,
        db,
        conversation,
        model=FLASH,
        mode="image_to_image",
        resolution="square",
        input_image_ids=[str(pro_image.id)],
    )
    [sent] = gemini.requests
    assert len(sent.json["contents"]) == 1
    assert all("thoughtSignature" not in p for p in sent.parts)


def test_with_every_pro_key_out_the_fallback_makes_the_images_charged_the_lower_price(
    make_app, worker_settings, start_worker, customer_factory, add_key, db, gemini, openai
):
    settings = {
        **worker_settings,
        "nproxy.providers": "nanobanana openai",
        "nanobanana.api_base": gemini.base_url,
        "nanobanana.timeout_seconds": "10",
        "nanobanana.connect_timeout_seconds": "2",
        "openai.api_base": openai.base_url,
        "openai.timeout_seconds": "10",
        "nproxy.fallback": f"nanobanana:{PRO}=openai:gpt-image-1",
    }
    app = make_app(**settings)
    for key in ("gemini-key-1", "gemini-key-2"):
        add_key(app.app.registry, key, provider="nanobanana")
        gemini.behave(key, "invalid_key")
    add_key(app.app.registry, "sk-fallback-0123456789", provider="openai")
    start_worker(**settings)
    alice = customer_factory(app, request_limit=30)

    # Pro at 1K is 3 units an image; GPT Image 1 medium square, 1.
    generation = _made(alice, db, alice.conversation(), model=PRO, resolution="square",
                       batch_size=2)  # fmt: skip
    assert fresh_cycle(db, alice.cycle.id).used == 2
    answer = alice.poll(str(generation.id))
    assert [image["model"] for image in answer["images"]] == ["gpt-image-1"] * 2
    db.expire_all()
    rows = db.scalars(
        sa.select(GenerationImage).where(GenerationImage.generation_id == generation.id)
    ).all()
    assert {(r.provider, r.model) for r in rows} == {("openai", "gpt-image-1")}
    sent = openai.requests_for("sk-fallback-0123456789")
    assert {(r.json["size"], r.json["quality"]) for r in sent} == {("1024x1024", "medium")}

    # At 4K (6 units) the fallback's square is still the lower price.
    _made(alice, db, alice.conversation(), model=PRO, resolution="square_4k")
    assert fresh_cycle(db, alice.cycle.id).used == 3


def test_a_fallback_that_names_no_enabled_model_stops_start_up(make_app, worker_settings):
    from pyramid.exceptions import ConfigurationExecutionError

    with pytest.raises(ConfigurationExecutionError) as stopped:
        make_app(**worker_settings, nproxy__fallback="demo:demo-pro=demo:nope")
    assert "the provider 'demo' offers no model 'nope'" in str(stopped.value)
