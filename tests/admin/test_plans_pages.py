"""The admin's plans pages (DESIGN 4.7, 4.12): every plan with its exact terms and the cycles
running on it; adding and editing a plan through ``billing.plans`` (audited, surface web); a
refused form shows the message next to the field at fault and changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import alerts, audit_rows
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import plans as plan_service
from nproxy_core.billing.models import Plan
from nproxy_core.db import utcnow

TESTER = Actor("tests", Surface.CLI)

NEW_PLAN = {
    "code": "pro",
    "name": "Pro",
    "price": "29.90",
    "currency": "usd",
    "price_stars": "1500",
    "period_months": "3",
    "units": "1000",
    "max_batch": "2",
    "api_rate_limit": "120/minute",
    "models": "demo-pro",
    "public": "1",
    "recurring_allowed": "1",
    "active": "1",
}


def plans(db: Any) -> dict[str, dict[str, Any]]:
    db.expire_all()
    return {p.code: plan_service.plan_view(p) for p in db.scalars(sa.select(Plan))}


def add(db: Any, code: str, **fields: Any) -> Plan:
    values = {"name": code.title(), "price": "20", "currency": "USD", "units": 700}
    plan = plan_service.add_plan(db, code, {"period_months": 1, **values, **fields}, actor=TESTER)
    db.commit()
    return plan


def test_the_list_shows_every_plan_exactly_with_the_cycles_running_on_it(
    admin, db, user_factory, make_cycle
):
    add(db, "gold", price="99.5", units=5000, models=["demo-pro"], max_batch=3, price_stars=7000)
    add(db, "old", public=False)
    plan_service.edit_plan(db, "old", {"active": False}, actor=TESTER)
    db.commit()
    for n in range(2):
        make_cycle(user_factory(f"c{n}@example.com"))
    # A cycle that ended is not counted.
    make_cycle(
        user_factory("gone@example.com"),
        starts_at=utcnow() - dt.timedelta(days=40),
        ends_at=utcnow() - dt.timedelta(days=10),
    )
    page = admin.get("/admin/plans")
    assert page.status_int == 200
    rows = {tr["data-plan"]: tr for tr in page.html.select("#plan-list tbody tr")}
    assert set(rows) == {"monthly", "gold", "old"}

    def cell(code: str, label: str) -> str:
        return " ".join(rows[code].select_one(f'td[data-label="{label}"]').get_text(" ").split())

    assert cell("gold", "Price") == "99.50 USD 7000 Stars"
    assert cell("gold", "Units") == "5000"
    assert cell("gold", "Models") == "demo-pro"
    assert cell("gold", "Max batch") == "3"
    assert cell("gold", "Cycles now") == "0"
    assert cell("monthly", "Cycles now") == "2"
    assert cell("monthly", "Models") == "all"
    assert "default" in cell("monthly", "Flags")
    assert rows["old"]["data-active"] == "false"
    assert "inactive" in cell("old", "Flags") and "hidden" in cell("old", "Flags")


def test_an_admin_adds_a_plan_and_it_is_audited_as_theirs(admin, db, admin_user):
    res, said, errors = admin.act("/admin/plans", NEW_PLAN)
    assert res.location.endswith("/admin/plans/pro")
    assert errors == [] and said == ["Added plan pro: 29.90 USD, 1000 units every 3 months."]
    assert plans(db)["pro"] == {
        "code": "pro",
        "name": "Pro",
        "price": "29.90",
        "currency": "USD",
        "price_stars": 1500,
        "period_months": 3,
        "units": 1000,
        "models": ["demo-pro"],
        "max_batch": 2,
        "api_rate_limit": "120/minute",
        "public": True,
        "free": False,
        "recurring_allowed": True,
        "active": True,
        "translations": {},
    }
    [row] = audit_rows(db, "plan.add")
    assert (row.actor, row.surface, row.after["units"]) == (admin_user.email, "web", 1000)


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"code": "Not A Slug!"}, "code", "code must be a slug"),
        ({"code": "monthly"}, "code", "a plan 'monthly' exists already"),
        ({"price": "abc"}, "price", "price must be a number"),
        ({"price": "0"}, "price", "needs a price above 0"),
        ({"units": "0"}, "units", "units must be a whole number above 0"),
        ({"units": ""}, "units", "units must be a whole number"),
        ({"currency": "U$"}, "currency", "currency must be 2 to 10 letters or digits"),
        ({"api_rate_limit": "lots"}, "api_rate_limit", "api_rate_limit must read like 60/minute"),
        ({"price_stars": "-5"}, "price_stars", "price_stars must be a whole number above 0"),
        ({"name": ""}, "name", "name must be 1 to 100 characters"),
    ],
)
def test_a_bad_new_plan_is_shown_again_with_the_message_by_its_field(
    admin, db, change, field, says
):
    before, audit_before = plans(db), audit_rows(db)
    res = admin.post("/admin/plans", {**NEW_PLAN, **change})
    assert res.status_int == 400
    box = res.html.find(id=f"{field}-error")
    assert box is not None and says in box.get_text(), res.text[:3000]
    assert res.html.find(id=field)["aria-invalid"] == "true"
    assert "Nothing was saved" in res.html.select_one("#form-error").get_text()
    # What was typed is kept, and nothing changed.
    assert res.html.find(id="name")["value"] == change.get("name", "Pro")
    assert plans(db) == before and audit_rows(db) == audit_before


def test_an_admin_edits_a_plan_and_only_the_changes_are_audited(admin, db):
    add(db, "gold", price="99", units=5000)
    page = admin.get("/admin/plans/gold")
    assert page.status_int == 200
    assert page.html.find(id="units")["value"] == "5000"
    # The form as the page fills it, with two changes.
    form = {
        "name": "Gold",
        "price": "99.00",
        "currency": "USD",
        "period_months": "1",
        "units": "6000",
        "public": "1",
        "active": "1",
        "recurring_allowed": "1",
    }
    _, said, errors = admin.act("/admin/plans/gold/edit", form)
    assert errors == [], errors
    assert said == ["Plan gold saved: units, recurring_allowed changed."]
    after = plans(db)["gold"]
    assert (after["units"], after["recurring_allowed"], after["price"]) == (6000, True, "99.00")
    [row] = audit_rows(db, "plan.edit")
    assert row.surface == "web"
    assert row.before == {"units": 5000, "recurring_allowed": False}
    # Saving the same again changes nothing and writes nothing.
    _, said, _ = admin.act("/admin/plans/gold/edit", {**form, "units": "6000"})
    assert said == ["Plan gold: nothing changed."] and len(audit_rows(db, "plan.edit")) == 1


def plans_row(db: Any, code: str) -> Plan:
    db.expire_all()
    return db.scalar(sa.select(Plan).where(Plan.code == code))


def test_a_bad_edit_changes_nothing_and_names_the_field(admin, db):
    add(db, "gold", price="99", units=5000)
    before, audit_before = plans(db), audit_rows(db)
    # Free with a price: refused by the rule across fields, shown by the price.
    res = admin.post(
        "/admin/plans/gold/edit",
        {"name": "Gold!", "price": "99", "currency": "USD", "period_months": "1",
         "units": "5000", "free": "1", "active": "1", "public": "1"},
    )  # fmt: skip
    assert res.status_int == 400
    assert "a free plan's price must be 0" in res.html.find(id="price-error").get_text()
    # The form keeps what was typed; the summary shows the plan as it is.
    assert res.html.find(id="name")["value"] == "Gold!"
    assert res.html.select_one("h1").get_text().startswith("Gold ")
    assert plans(db) == before and audit_rows(db) == audit_before


def test_an_unknown_plan_is_404(admin):
    assert admin.get("/admin/plans/nope").status_int == 404
    assert admin.post("/admin/plans/nope/edit", {"units": "5"}).status_int == 404


def test_plans_pages_are_for_admins_only(browse, db, user_factory):
    user_factory("plain@example.com")
    user = browse().login("plain@example.com")
    before = plans(db)
    assert user.get("/admin/plans").status_int == 404
    assert user.get("/admin/plans/monthly").status_int == 404
    assert user.post("/admin/plans", NEW_PLAN).status_int == 404
    assert user.post("/admin/plans/monthly/edit", {"units": "1"}).status_int == 404
    anonymous = browse()
    res = anonymous.get("/admin/plans")
    assert res.status_int == 303 and "/login" in res.location
    assert anonymous.post("/admin/plans", NEW_PLAN).status_int == 303
    assert plans(db) == before


def test_plan_forms_need_the_csrf_token(admin, db):
    before = plans(db)
    res = admin.post("/admin/plans", NEW_PLAN, csrf=False)
    assert res.status_int == 403 and "CSRF" in res.text
    res = admin.post("/admin/plans/monthly/edit", {"units": "1"}, csrf=False)
    assert res.status_int == 403
    assert plans(db) == before


def test_the_edit_form_as_the_page_fills_it_saves_the_plan_unchanged(admin, db):
    add(db, "gold", price="99.5", units=5000, models=["demo-pro"], price_stars=10,
        max_batch=2, api_rate_limit="10/minute", recurring_allowed=True)  # fmt: skip
    before = plans(db)
    page = admin.app.get("/admin/plans/gold")
    res = page.forms["plan-form"].submit()
    assert res.status_int == 303
    assert alerts(res.follow(), "success") == ["Plan gold: nothing changed."]
    assert plans(db) == before and audit_rows(db, "plan.edit") == []
    # Unticking a model and a flag in the browser's form changes just those.
    page = admin.app.get("/admin/plans/gold")
    form = page.forms["plan-form"]
    [box] = [f for f in form.fields["models"] if f._value == "demo-pro"]
    box.checked = False
    form["recurring_allowed"].checked = False
    assert alerts(form.submit().follow(), "success") == [
        "Plan gold saved: models, recurring_allowed changed."
    ]
    assert (plans(db)["gold"]["models"], plans(db)["gold"]["recurring_allowed"]) == ([], False)
