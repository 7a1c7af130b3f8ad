"""Plans as rows (DESIGN 4.12): the plans for sale, checkout of a named plan, what a payment
activates after its plan changed, adding and editing plans (audited), and the default plan's
terms from the settings."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from admin_support import audit_rows
from apiclient import ApiClient
from cli_runner import write_ini
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import plans as plan_service
from nproxy_core.billing.models import BillingCycle, Payment, Plan
from nproxy_core.cli import main
from nproxy_core.errors import Conflict, ValidationError

ADMIN = Actor("tester", Surface.CLI)


@pytest.fixture
def demo_api(make_app: Any) -> ApiClient:
    return ApiClient(make_app(nproxy__payments="demo"))


def add(db: Any, code: str, **fields: Any) -> Plan:
    values = {
        "name": code.title(),
        "price": "20",
        "currency": "USD",
        "units": 700,
        "period_months": 1,
        **fields,
    }
    plan = plan_service.add_plan(db, code, values, actor=ADMIN)
    db.commit()
    return plan


def monthly(db: Any) -> Plan:
    db.expire_all()
    return db.scalar(sa.select(Plan).where(Plan.code == "monthly"))


# --- GET /api/v1/plans -------------------------------------------------------------------------


def test_plans_lists_the_public_active_plans_with_images_per_model(api, db, make_cycle):
    add(db, "pro", name="Pro", price="29.90", units=1000, recurring_allowed=True)
    add(db, "secret", public=False)
    add(db, "old", active=True)
    plan_service.edit_plan(db, "old", {"active": False}, actor=ADMIN)
    db.commit()
    plans = api.get("/api/v1/plans").json["plans"]
    assert [p["code"] for p in plans] == ["monthly", "pro"]
    pro = plans[1]
    assert pro == {
        "code": "pro",
        "name": "Pro",
        "price": {"amount": "29.90", "currency": "USD"},
        "price_stars": None,
        "period_months": 1,
        "free": False,
        "recurring_allowed": True,
        "images_per_model": pro["images_per_model"],
    }
    # Units over each model's price at its default size: Demo 1 unit, Demo Pro 3 units.
    assert [(e["label"], e["units_per_image"], e["images"]) for e in pro["images_per_model"]] == [
        ("Demo", 1, 1000),
        ("Demo Pro", 3, 333),
    ]
    assert plans[0]["price"] == {"amount": "9.99", "currency": "USD"}


def test_plans_never_show_anyones_counts(api, db, user_factory, make_cycle):
    user = user_factory("counted@example.com")
    make_cycle(user, request_limit=300, used=123, reserved=4)
    api.login(user.email)
    text = api.get("/api/v1/plans").text
    assert "123" not in text and "177" not in text and "bucket" not in text


def test_plans_restricted_to_models_estimate_only_those(api, db, registry):
    from nproxy_core.plugin_registry import IPlugins
    from nproxy_core.wiring import find_service

    models = [
        caps.model
        for provider in find_service(registry, IPlugins).providers.values()
        for caps in provider.capabilities()
    ]
    add(db, "narrow", models=[models[0], "not-a-model"])
    [narrow] = [p for p in api.get("/api/v1/plans").json["plans"] if p["code"] == "narrow"]
    assert [e["model"] for e in narrow["images_per_model"]] == [models[0]]


def test_the_old_plan_endpoint_answers_the_default_plan(make_app, db):
    add(db, "pro", name="Pro", price="30")
    api = ApiClient(make_app(nproxy__plan__default="pro"))
    assert api.get("/api/v1/plan").json == {
        "name": "Pro",
        "price": {"amount": "30.00", "currency": "USD"},
        "period_months": 1,
    }


# --- checkout ----------------------------------------------------------------------------------


def test_checkout_of_a_named_plan_records_its_terms(demo_api, db):
    add(db, "pro", name="Pro", price="29.90", units=1000, period_months=3)
    demo_api.register("buyer@example.com")
    res = demo_api.post("/api/v1/billing/checkout", {"processor": "demo", "plan": "pro"})
    assert res.status_int == 201
    payment = db.scalar(sa.select(Payment))
    assert (payment.amount, payment.currency) == (Decimal("29.90"), "USD")
    assert (payment.plan.code, payment.plan_units, payment.plan_period_months) == ("pro", 1000, 3)


def test_checkout_without_a_plan_buys_the_default_one(demo_api, db):
    demo_api.register("buyer@example.com")
    res = demo_api.post("/api/v1/billing/checkout", {"processor": "demo"})
    assert res.status_int == 201
    payment = db.scalar(sa.select(Payment))
    assert payment.plan.code == "monthly" and payment.amount == Decimal("9.99")


@pytest.mark.parametrize(
    ("setup", "plan", "says"),
    [
        (None, "gold", "There is no plan 'gold'."),
        ("inactive", "old", "The plan 'old' is no longer sold."),
        ("free", "trial", "The plan 'trial' is free: nothing to pay."),
        (None, 7, "Name a plan."),
    ],
)
def test_checkout_refuses_a_plan_that_cannot_be_bought(demo_api, db, setup, plan, says):
    if setup == "inactive":
        add(db, "old")
        plan_service.edit_plan(db, "old", {"active": False}, actor=ADMIN)
        db.commit()
    elif setup == "free":
        add(db, "trial", price="0", free=True)
    demo_api.register("buyer@example.com")
    res = demo_api.post("/api/v1/billing/checkout", {"processor": "demo", "plan": plan}, status=400)
    assert res.json["error"]["code"] == "validation_error"
    assert res.json["error"]["message"] == says
    assert db.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0


def test_a_stars_processor_sells_only_plans_with_a_stars_price(db):
    class Stars:
        name = "stars"
        charges_stars = True

    pro = add(db, "pro")
    assert plan_service.sold_by(pro, Stars()) == "has no price in Stars, so 'stars' cannot sell it"
    plan_service.edit_plan(db, "pro", {"price_stars": 500}, actor=ADMIN)
    assert plan_service.sold_by(pro, Stars()) is None


def test_a_payment_activates_what_was_paid_for_after_its_plan_changed(demo_app_and_api, db):
    app, api = demo_app_and_api
    add(db, "pro", name="Pro", price="29.90", units=1000, period_months=3)
    api.register("buyer@example.com")
    res = api.post("/api/v1/billing/checkout", {"processor": "demo", "plan": "pro"})
    # The plan changes after checkout, before the payment finishes.
    plan_service.edit_plan(db, "pro", {"price": "49", "units": 50, "period_months": 1}, actor=ADMIN)
    db.commit()
    page = app.get(res.json["checkout_url"].removeprefix("http://localhost"))
    page.forms["demo-outcome"].submit("outcome", value="paid")
    db.expire_all()
    cycle = db.scalar(sa.select(BillingCycle))
    assert (cycle.plan.code, cycle.request_limit, cycle.period_months) == ("pro", 1000, 3)


@pytest.fixture
def demo_app_and_api(make_app: Any) -> tuple[Any, ApiClient]:
    app = make_app(nproxy__payments="demo")
    return app, ApiClient(app)


# --- add and edit ------------------------------------------------------------------------------


def test_adding_and_editing_a_plan_is_audited(db):
    add(db, "pro", name="Pro", price="29.90", units=1000)
    plan_service.edit_plan(db, "pro", {"units": 1200, "public": False}, actor=ADMIN)
    plan_service.edit_plan(db, "pro", {"units": 1200}, actor=ADMIN)  # no change: no row
    db.commit()
    rows = [r for r in audit_rows(db) if r.target_type == "plan"]
    assert [(r.action, r.actor, r.surface) for r in rows] == [
        ("plan.add", "tester", "cli"),
        ("plan.edit", "tester", "cli"),
    ]
    assert rows[0].after["price"] == "29.90" and rows[0].after["units"] == 1000
    assert rows[1].before == {"units": 1000, "public": True}
    assert rows[1].after == {"code": "pro", "units": 1200, "public": False}


@pytest.mark.parametrize(
    ("code", "fields", "says"),
    [
        ("Pro Plan", {}, "code must be a slug"),
        ("pro", {"price": "-1"}, "price must be 0 or more"),
        ("pro", {"price": "abc"}, "price must be a number"),
        ("pro", {"price": "0.000000001"}, "at most 8 decimals"),
        ("pro", {"price": "0"}, "needs a price above 0"),
        ("pro", {"free": True}, "a free plan's price must be 0"),
        ("pro", {"currency": "us dollars"}, "currency must be 2 to 10"),
        ("pro", {"units": 0}, "units must be a whole number above 0"),
        ("pro", {"period_months": "one"}, "period_months must be a whole number"),
        ("pro", {"api_rate_limit": "lots"}, "api_rate_limit must read like 60/minute"),
        ("pro", {"max_batch": -2}, "max_batch must be a whole number above 0"),
        ("pro", {"name": " "}, "name must be 1 to 100 characters"),
    ],
)
def test_a_bad_plan_is_refused_with_a_clear_error(db, code, fields, says):
    values = {"name": "Pro", "price": "10", "currency": "USD", "units": 10, "period_months": 1}
    with pytest.raises(ValidationError, match=says):
        plan_service.add_plan(db, code, {**values, **fields}, actor=ADMIN)


def test_a_plan_code_is_unique_and_a_free_plan_costs_nothing(db):
    add(db, "trial", price="0", free=True, units=10, api_rate_limit="10/hour")
    with pytest.raises(Conflict, match="exists already"):
        add(db, "trial", price="0", free=True)
    assert db.scalar(sa.select(Plan).where(Plan.code == "trial")).api_rate_limit == "10/hour"


# --- the default plan's terms from the settings --------------------------------------------------


def test_the_default_plan_follows_the_settings_until_edited(make_app, db):
    make_app(nproxy__plan__price="25.50", nproxy__plan__request_limit="40")
    plan = monthly(db)
    assert (plan.price, plan.units) == (Decimal("25.50"), 40)
    plan_service.edit_plan(db, "monthly", {"units": 60}, actor=ADMIN)
    db.commit()
    make_app(nproxy__plan__price="30", nproxy__plan__request_limit="40")
    plan = monthly(db)
    # Edited by an operator: the row, not the settings, says what it is.
    assert (plan.price, plan.units) == (Decimal("25.50"), 60)


# --- nproxy plans ------------------------------------------------------------------------------


@pytest.fixture
def ini(tmp_path: Path, base_settings: dict[str, Any], db: Any) -> str:
    return str(write_ini(tmp_path, base_settings))


def run(ini: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["-c", ini, *args])


def test_the_plans_commands_give_a_plan_its_names_in_russian_and_uzbek(ini, db):
    added = run(
        ini, "plans", "add", "pro", "--name", "Pro", "--price", "20", "--currency", "USD",
        "--units", "900", "--period-months", "1", "--name-ru", "Профи", "--name-uz", "Pro",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    # One name changed, the other kept; '' removes one (the English shows).
    assert run(ini, "plans", "edit", "pro", "--name-uz", "Professional").exit_code == 0
    db.expire_all()
    pro = db.scalar(sa.select(Plan).where(Plan.code == "pro"))
    assert pro.translations == {"ru": {"name": "Профи"}, "uz": {"name": "Professional"}}
    assert run(ini, "plans", "edit", "pro", "--name-ru", "").exit_code == 0
    db.expire_all()
    assert db.scalar(sa.select(Plan.translations).where(Plan.code == "pro")) == {
        "uz": {"name": "Professional"}
    }
    too_long = run(ini, "plans", "edit", "pro", "--name-ru", "Я" * 101)
    assert too_long.exit_code != 0
    assert "The name in Russian is 101 characters long; at most 100 fit." in too_long.output


def test_plans_commands_add_list_and_edit(ini, db):
    added = run(
        ini, "plans", "add", "pro", "--name", "Pro", "--price", "29.90", "--currency", "usd",
        "--units", "1000", "--period-months", "3", "--hidden", "--models", "m1", "--models",
        "m2", "--stars", "1500", "--api-rate-limit", "120/minute", "--recurring",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == "added plan pro: 29.90 USD, 1000 units"
    listed = run(ini, "plans", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["code"]: r for r in json.loads(listed.stdout)}
    assert rows["monthly"]["default"] is True and rows["pro"]["default"] is False
    assert rows["pro"] | {"default": False} == {
        "code": "pro",
        "name": "Pro",
        "price": "29.90",
        "currency": "USD",
        "price_stars": 1500,
        "period_months": 3,
        "units": 1000,
        "models": ["m1", "m2"],
        "max_batch": None,
        "api_rate_limit": "120/minute",
        "public": False,
        "free": False,
        "recurring_allowed": True,
        "active": True,
        "translations": {},
        "default": False,
    }
    edited = run(ini, "plans", "edit", "pro", "--inactive", "--public", "--units", "900")
    assert edited.exit_code == 0, edited.output
    db.expire_all()
    pro = db.scalar(sa.select(Plan).where(Plan.code == "pro"))
    assert (pro.active, pro.public, pro.units, pro.models) == (False, True, 900, ["m1", "m2"])
    table = run(ini, "plans", "list")
    assert "pro" in table.stdout and "inactive" in table.stdout
    actions = [(r.action, r.surface) for r in audit_rows(db) if r.target_type == "plan"]
    assert actions == [("plan.add", "cli"), ("plan.edit", "cli")]


def test_plans_commands_name_what_is_wrong(ini, db):
    bad = run(ini, "plans", "add", "pro", "--name", "Pro", "--price", "0", "--currency", "USD",
              "--units", "5", "--period-months", "1")  # fmt: skip
    assert bad.exit_code != 0 and "needs a price above 0" in bad.stderr
    missing = run(ini, "plans", "edit", "gold", "--units", "5")
    assert missing.exit_code != 0 and "no plan 'gold'" in missing.stderr
    nothing = run(ini, "plans", "edit", "monthly")
    assert nothing.exit_code != 0 and "nothing to change" in nothing.output


def test_grant_cycle_of_a_named_plan(ini, db, user_factory):
    user = user_factory("gift@example.com")
    add(db, "pro", units=1000, period_months=3)
    granted = run(ini, "users", "grant-cycle", user.email, "--reason", "thanks", "--plan", "pro")
    assert granted.exit_code == 0, granted.output
    default = run(ini, "users", "grant-cycle", user.email, "--reason", "again")
    assert default.exit_code == 0, default.output
    db.expire_all()
    cycles = db.scalars(sa.select(BillingCycle).order_by(BillingCycle.id)).all()
    assert [(c.plan.code, c.request_limit, c.period_months) for c in cycles] == [
        ("pro", 1000, 3),
        ("monthly", 300, 1),
    ]
    [first, _] = [r for r in audit_rows(db) if r.action == "user.grant_cycle"]
    assert first.after["plan"] == "pro" and first.surface == "cli"
    unknown = run(ini, "users", "grant-cycle", user.email, "--reason", "x", "--plan", "gold")
    assert unknown.exit_code != 0 and "no plan 'gold'" in unknown.stderr


def test_users_list_filters_by_the_current_cycles_plan(ini, db, user_factory, make_cycle):
    pro = add(db, "pro", name="Pro")
    on_pro = user_factory("pro@example.com")
    make_cycle(on_pro)
    db.execute(sa.update(BillingCycle).values(plan_id=pro.id))
    db.commit()
    make_cycle(user_factory("monthly@example.com"))
    listed = run(ini, "users", "list", "--plan", "pro", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(r["email"], r["plan"]) for r in json.loads(listed.stdout)] == [
        ("pro@example.com", "Pro")
    ]
    by_name = run(ini, "users", "list", "--plan", "Monthly", "--json")
    assert [r["email"] for r in json.loads(by_name.stdout)] == ["monthly@example.com"]


def test_a_malformed_default_plan_setting_stops_start_up(make_app):
    from nproxy_core.config import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"nproxy\.plan\.default"):
        make_app(nproxy__plan__default="Not a code!")


def test_a_default_plan_without_its_row_is_named(make_app):
    api = ApiClient(make_app(nproxy__plan__default="gold"))
    res = api.get("/api/v1/plan", status=404)
    assert "'gold' (nproxy.plan.default) does not exist" in res.json["error"]["message"]
