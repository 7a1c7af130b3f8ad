"""A model that answers with words and no picture (issue 26, fix 3): the person reads what
happened, in the model's words, the generation can be retried, and nothing is charged."""

from __future__ import annotations

import uuid

from fakes.gemini import fake_gemini
from nproxy_core.billing.models import BillingCycle
from nproxy_core.generation.models import Generation
from nproxy_core.generation.tasks import run_generation
from nproxy_core.keypool.errors import FAILURE_MESSAGES
from nproxy_core.quota.models import HoldState, QuotaHold
from nproxy_core.tasks import run_now


def _cycle(db, customer) -> tuple[int, int]:
    db.expire_all()
    cycle = db.get(BillingCycle, customer.cycle.id)
    return cycle.used, cycle.reserved


def test_a_text_only_answer_says_what_the_model_said_and_costs_nothing(
    make_app, customer_factory, add_key, db
):
    app = make_app(**{"demo.text_only_rate": "1", "demo.delay_seconds": "0"})
    add_key(app.app.registry, "demo-key-1")
    alice = customer_factory(app)
    conversation = alice.conversation()
    submitted = alice.submit(conversation, prompt="a lighthouse", resolution="square")
    assert submitted.status_int == 202
    assert run_now(app.app.registry, run_generation, submitted.json["id"]) == "failed"

    answer = alice.poll(submitted.json["id"])
    assert answer["status"] == "failed"
    assert answer["error"]["code"] == "invalid_input"
    message = answer["error"]["message"]
    assert message.startswith("The model answered with text only: “I would rather describe")
    assert "nothing was charged" in message
    # Not blamed on an input image or a setting.
    assert message != FAILURE_MESSAGES["invalid_input"]
    hold = db.get(QuotaHold, db.get(Generation, uuid.UUID(answer["id"])).quota_hold_id)
    assert hold.consumed == 0 and hold.state != HoldState.HELD
    assert _cycle(db, alice) == (0, 0)
    # Offered again: a retry is accepted.
    assert alice.api.post(f"/api/v1/generations/{answer['id']}/retry").status_int == 202


def test_nano_banana_text_only_answers_quote_the_model(make_app, customer_factory, add_key, db):
    with fake_gemini() as gemini:
        app = make_app(
            **{"nproxy.providers": "nanobanana", **gemini.settings()},
        )
        add_key(app.app.registry, "text_only-key-1", provider="nanobanana")
        alice = customer_factory(app)
        submitted = alice.submit(alice.conversation(), prompt="a lighthouse")
        assert submitted.status_int == 202, submitted.text
        assert run_now(app.app.registry, run_generation, submitted.json["id"]) == "failed"
        error = alice.poll(submitted.json["id"])["error"]
    assert error["message"].startswith(
        "The model answered with text only: “I can only describe this scene, not draw it.”"
    )
    assert _cycle(db, alice) == (0, 0)
