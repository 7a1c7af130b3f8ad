"""Units through the chat API (DESIGN 4.12): what each model costs, holds of N x cost, packs in
``/api/v1/me``, and a plan's model list and batch cap."""

from __future__ import annotations

import sqlalchemy as sa

from nproxy_core.audit import Actor, Surface
from nproxy_core.billing.models import BillingCycle, Plan
from nproxy_core.pricing import IUnitPrices
from nproxy_core.wiring import find_service


def _reserved(db, cycle_id: int) -> int:
    db.expire_all()
    return db.get(BillingCycle, cycle_id).reserved


def test_models_carry_their_units_per_resolution(app, customer_factory):
    alice = customer_factory(app)
    models = {m["model"]: m for m in alice.api.get("/api/v1/models").json["models"]}
    assert set(models["demo-image-1"]["units"].values()) == {1}
    pro = models["demo-pro"]
    assert pro["units"]["square"] == 3 and pro["units"]["square_2k"] == 6
    assert {r["id"]: r["units"] for r in pro["resolutions"]} == pro["units"]


def test_30_units_buy_5_six_unit_images_and_not_one_more(app, customer_factory, db):
    pat = customer_factory(app, request_limit=30)
    conversation = pat.conversation()
    for _ in range(5):
        answer = pat.submit(conversation, model="demo-pro", resolution="square_2k")
        assert answer.status_int == 202, answer.text
    refused = pat.submit(conversation, model="demo-pro", resolution="square_2k")
    assert refused.status_int == 402
    assert refused.json["error"]["code"] == "quota_exhausted"
    assert _reserved(db, pat.cycle.id) == 30
    me = pat.api.get("/api/v1/me").json
    assert me["quota"] == {"bucket": 0, "max_batch_now": 0, "max_units_now": 0}


def test_the_same_30_units_buy_30_one_unit_images(app, customer_factory, db):
    sam = customer_factory(app, request_limit=30)
    conversation = sam.conversation()
    for _ in range(7):
        assert sam.submit(conversation, resolution="square", batch_size=4).status_int == 202
    assert sam.submit(conversation, resolution="square", batch_size=2).status_int == 202
    assert sam.submit(conversation, resolution="square").status_int == 402
    assert _reserved(db, sam.cycle.id) == 30


def test_an_admins_override_is_what_a_submission_holds(app, customer_factory, db):
    prices = find_service(app.app.registry, IUnitPrices)
    prices.set_override(db, "demo", "demo-pro", "square", 5, Actor("ops", Surface.CLI))
    db.commit()
    olga = customer_factory(app, request_limit=30)
    assert olga.submit(olga.conversation(), model="demo-pro", resolution="square").status_int == 202
    assert _reserved(db, olga.cycle.id) == 5
    models = {m["model"]: m for m in olga.api.get("/api/v1/models").json["models"]}
    assert models["demo-pro"]["units"]["square"] == 5


def test_packs_show_exactly_and_pay_when_the_cycle_cannot(app, customer_factory, make_pack, db):
    quinn = customer_factory(app, request_limit=None)
    assert quinn.submit(quinn.conversation(), resolution="square").status_int == 402
    make_pack(quinn.user, 12, label="Starter pack")
    me = quinn.api.get("/api/v1/me").json
    assert [(p["label"], p["units_left"]) for p in me["packs"]] == [("Starter pack", 12)]
    assert me["quota"]["max_units_now"] == 12
    answer = quinn.submit(quinn.conversation(), model="demo-pro", resolution="square", batch_size=4)
    assert answer.status_int == 202
    # 12 units held of 12: the pack is spoken for, so it is no longer listed as usable.
    me = quinn.api.get("/api/v1/me").json
    assert me["packs"] == []
    assert me["quota"]["max_units_now"] == 0


def test_a_plan_without_the_model_is_403_plan_excludes_model(app, customer_factory, db):
    plan = db.scalar(sa.select(Plan).where(Plan.code == "monthly"))
    plan.models = ["demo-image-1"]
    plan.max_batch = 2
    db.commit()
    rae = customer_factory(app, request_limit=30)
    refused = rae.submit(rae.conversation(), model="demo-pro", resolution="square")
    assert refused.status_int == 403
    assert refused.json["error"]["code"] == "plan_excludes_model"
    assert "demo-pro" in refused.json["error"]["message"]
    too_many = rae.submit(rae.conversation(), resolution="square", batch_size=3)
    assert too_many.status_int == 400
    assert too_many.json["error"]["fields"] == {"batch_size": "out_of_range"}
    assert _reserved(db, rae.cycle.id) == 0
    models = {m["model"]: m for m in rae.api.get("/api/v1/models").json["models"]}
    assert (models["demo-pro"]["allowed"], models["demo-image-1"]["allowed"]) == (False, True)
    assert models["demo-image-1"]["max_batch"] == 2
    assert rae.api.get("/api/v1/me").json["quota"]["max_batch_now"] == 2


def test_a_retired_id_is_made_by_its_successor_and_models_say_their_status(
    make_app, customer_factory
):
    from fakes.gemini import fake_gemini

    with fake_gemini() as gemini:
        app = make_app(nproxy__providers="nanobanana", nanobanana__api_base=gemini.base_url)
        pat = customer_factory(app)
        models = {m["model"]: m for m in pat.api.get("/api/v1/models").json["models"]}
        flash = models["gemini-2.5-flash-image"]
        assert (flash["status"], flash["aliases"]) == ("ga", ["gemini-2.5-flash-image-preview"])
        assert models["gemini-3-pro-image-preview"]["status"] == "preview"
        conversation = pat.conversation()
        answer = pat.submit(
            conversation, model="gemini-2.5-flash-image-preview", resolution="square"
        )
        assert answer.status_int == 202, answer.text
        [message] = pat.api.get(f"/api/v1/conversations/{conversation}").json["messages"]
        assert message["model"] == "gemini-2.5-flash-image"
        unknown = pat.submit(pat.conversation(), model="gemini-1.0-image", resolution="square")
        assert unknown.status_int == 400
        assert unknown.json["error"]["fields"] == {"model": "invalid"}
