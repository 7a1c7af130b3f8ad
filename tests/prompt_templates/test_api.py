"""Templates through the real app: the gallery, a submission of ``{template, inputs}`` in the
chat API and ``/v1/generate`` (the prompt built on the server), every bad input refused with a
400 naming its field and nothing written, and the model's words kept with the generation."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from fakes.gemini import make_png
from nproxy_core.generation.models import Generation, Message
from nproxy_core.generation.tasks import run_generation
from nproxy_core.prompt_templates.models import PromptTemplate, TemplateRun
from nproxy_core.quota.models import QuotaHold
from nproxy_core.tasks import run_now

SHIPPED = ["fursona", "sticker", "product-shot", "avatar", "poster"]


def _upload(customer: Any) -> str:
    response = customer.api.app.post(
        "/api/v1/uploads",
        upload_files=[("file", "me.png", make_png(48, 48))],
        headers={"X-CSRF-Token": customer.api.csrf()},
    )
    assert response.status_int == 201, response.text
    return response.json["id"]


def _submit(customer: Any, conversation: str, body: dict[str, Any]) -> Any:
    return customer.api.post(f"/api/v1/conversations/{conversation}/generations", body)


def _counts(db: Any) -> tuple[int, int, int, int]:
    return tuple(
        db.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (Message, Generation, QuotaHold, TemplateRun)
    )


def test_the_gallery_lists_the_five_shipped_templates_in_order(alice):
    answer = alice.api.get("/api/v1/templates")
    assert answer.status_int == 200
    templates = answer.json["templates"]
    assert [t["slug"] for t in templates] == SHIPPED
    fursona = templates[0]
    assert fursona["title"] == "Fursona from your photo"
    assert fursona["with_text"] is True
    assert [(f["name"], f["kind"], f["required"]) for f in fursona["fields"]] == [
        ("photo", "image", True),
        ("species", "select", True),
        ("colours", "text", True),
    ]
    assert "Fox" in fursona["fields"][1]["options"]
    # No example yet: an admin makes one through the model.
    assert fursona["example_url"] is None


def test_the_gallery_needs_a_login_and_leaves_out_hidden_templates(api, alice, db):
    assert api.get("/api/v1/templates").json["error"]["code"] == "not_authenticated"
    db.execute(
        sa.update(PromptTemplate).where(PromptTemplate.slug == "poster").values(active=False)
    )
    db.commit()
    slugs = [t["slug"] for t in alice.api.get("/api/v1/templates").json["templates"]]
    assert slugs == SHIPPED[:-1]


def test_a_template_submission_builds_the_prompt_on_the_server(alice, db, app):
    conversation = alice.conversation()
    answer = _submit(
        alice,
        conversation,
        {"template": "sticker", "inputs": {"subject": "a sleepy otter", "style": "Kawaii"}},
    )
    assert answer.status_int == 202, answer.text
    message = db.scalar(sa.select(Message))
    assert message.prompt == (
        "A die-cut sticker of a sleepy otter in a Kawaii style: thick white border, bold "
        "outlines, bright colours, plain light background."
    )
    assert (str(message.mode), message.resolution) == ("text_to_image", "square")
    run = db.get(TemplateRun, message.generations[0].id)
    assert run.inputs == {"subject": "a sleepy otter", "style": "Kawaii"}
    assert run.with_text is False
    assert run_now(app.app.registry, run_generation, answer.json["id"]) == "succeeded"
    done = alice.poll(answer.json["id"])
    assert len(done["images"]) == 1
    # No words asked for: none shown.
    assert "text" not in done


def test_the_fursona_keeps_the_models_words_with_the_generation(alice, db, app):
    photo = _upload(alice)
    conversation = alice.conversation()
    answer = _submit(
        alice,
        conversation,
        {
            "template": "fursona",
            "inputs": {"photo": photo, "species": "Fox", "colours": "orange and cream"},
        },
    )
    assert answer.status_int == 202, answer.text
    message = db.scalar(sa.select(Message))
    assert str(message.mode) == "image_to_image"
    assert message.input_upload_ids == [photo]
    assert "the attached image" in message.prompt and "Fox" in message.prompt
    assert run_now(app.app.registry, run_generation, answer.json["id"]) == "succeeded"

    done = alice.poll(answer.json["id"])
    assert done["text"].startswith("Meet ")
    # The conversation shows it under the image as well.
    thread = alice.api.get(f"/api/v1/conversations/{conversation}").json
    assert thread["messages"][0]["generations"][0]["text"] == done["text"]
    # A retry asks for the words again.
    retried = alice.api.post(f"/api/v1/generations/{answer.json['id']}/retry")
    assert retried.status_int == 202
    assert db.get(TemplateRun, uuid.UUID(retried.json["id"])).with_text is True


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"template": "nope", "inputs": {}}, "template", "Unknown template"),
        ({"template": 7}, "template", "slug"),
        ({"template": "sticker", "inputs": {"style": "Kawaii"}}, "inputs.subject", "required"),
        (
            {"template": "sticker", "inputs": {"subject": "a cat", "style": "Oil"}},
            "inputs.style",
            "not one of",
        ),
        (
            {"template": "sticker", "inputs": {"subject": "a cat", "style": "Kawaii", "x": "1"}},
            "inputs.x",
            "no field",
        ),
        ({"template": "sticker", "inputs": ["a cat"]}, "inputs", "object"),
        (
            {"template": "sticker", "inputs": {"subject": "a" * 301, "style": "Kawaii"}},
            "inputs.subject",
            "longer",
        ),
        (
            {
                "template": "sticker",
                "inputs": {"subject": "a cat", "style": "Kawaii"},
                "prompt": "x",
            },
            "prompt",
            "decided by the template",
        ),
        (
            {
                "template": "fursona",
                "inputs": {
                    "photo": "00000000-0000-0000-0000-000000000000",
                    "species": "Fox",
                    "colours": "grey",
                },
            },
            "inputs.photo",
            "not found",
        ),
    ],
)
def test_bad_inputs_are_refused_naming_the_field_and_change_nothing(alice, db, body, field, words):
    conversation = alice.conversation()
    before = _counts(db)
    answer = _submit(alice, conversation, body)
    assert answer.status_int == 400, answer.text
    error = answer.json["error"]
    assert error["code"] == "validation_error"
    assert field in error.get("fields", {}), error
    assert words in error["message"]
    assert _counts(db) == before


def test_someone_elses_photo_is_not_found(alice, customer_factory, app, db):
    bob = customer_factory(app, email="bob@example.com")
    photo = _upload(bob)
    answer = _submit(
        alice,
        alice.conversation(),
        {"template": "avatar", "inputs": {"photo": photo, "style": "Anime"}},
    )
    assert answer.status_int == 400
    assert answer.json["error"]["fields"] == {"inputs.photo": "not_found"}


def test_a_placeholder_no_field_fills_is_refused_not_sent_half_filled(alice, db):
    db.execute(
        sa.update(PromptTemplate)
        .where(PromptTemplate.slug == "sticker")
        .values(prompt="A sticker of {subject} with {mood}")
    )
    db.commit()
    answer = _submit(
        alice,
        alice.conversation(),
        {"template": "sticker", "inputs": {"subject": "a cat", "style": "Kawaii"}},
    )
    assert answer.status_int == 400
    assert answer.json["error"]["fields"] == {"template": "broken"}
    assert "{mood}" in answer.json["error"]["message"]


def test_v1_generate_takes_a_template_with_a_base64_photo(developer_factory, app, add_key, db):
    add_key(app.app.registry, "demo-key-1")
    dev = developer_factory(app)
    photo = "data:image/png;base64," + base64.b64encode(make_png(40, 40)).decode()
    answer = dev.generate(
        {"template": "fursona", "inputs": {"photo": photo, "species": "Wolf", "colours": "grey"}},
        Prefer="wait=0",
    )
    assert answer.status_int in (200, 202), answer.text
    generation_id = answer.json["id"]
    message = db.scalar(sa.select(Message))
    assert len(message.input_upload_ids) == 1 and "Wolf" in message.prompt
    assert run_now(app.app.registry, run_generation, generation_id) == "succeeded"
    done = dev.get(f"/v1/generations/{generation_id}").json
    assert done["status"] == "succeeded"
    assert done["text"].startswith("Meet ")


def test_v1_generate_refuses_bad_template_inputs_naming_the_field(developer_factory, app, db):
    dev = developer_factory(app)
    before = _counts(db)
    answer = dev.generate({"template": "sticker", "inputs": {"subject": "a cat", "style": "Oil"}})
    assert answer.status_int == 400
    assert "inputs.style" in answer.json["error"]["fields"]
    answer = dev.generate({"template": "sticker", "inputs": {}, "size": "1024x1024"})
    assert answer.status_int == 400
    assert "size" in answer.json["error"]["fields"]
    assert _counts(db) == before
