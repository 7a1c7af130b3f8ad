"""The admin's unit prices page (DESIGN 4.7, 4.12): every enabled (provider, model, resolution)
with its USD estimate, default, override and the units it costs now, one section per model;
setting and clearing an override through ``IUnitPrices`` (audited, surface web) changes what a
submission is charged."""

from __future__ import annotations

from typing import Any

import pytest

from admin_support import audit_rows
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.pricing import IUnitPrices
from nproxy_core.wiring import find_service


def cost(app: Any, db: Any, model: str, resolution: str) -> int:
    """What one image costs now, as a submission is charged."""
    registry = app.app.registry
    [caps] = [
        c for c in find_service(registry, IPlugins).providers["demo"].capabilities()
        if c.model == model
    ]  # fmt: skip
    db.expire_all()
    return find_service(registry, IUnitPrices).cost(db, "demo", caps, resolution)


def rows(page: Any, model: str) -> dict[str, Any]:
    section = page.html.select_one(f'section[data-model="{model}"]')
    return {tr["data-resolution"]: tr for tr in section.select("tbody tr")}


def cell(row: Any, label: str) -> str:
    return " ".join(row.select_one(f'td[data-label="{label}"]').get_text(" ").split())


def test_every_price_is_listed_by_model_with_its_rule(admin):
    page = admin.get("/admin/pricing")
    assert page.status_int == 200
    assert "$0.039" in page.html.select_one("#pricing-rule").get_text()
    assert "nproxy.units.usd_per_unit" in page.html.select_one("#pricing-rule").get_text()
    models = [s["data-model"] for s in page.html.select("section.price-model")]
    assert models == ["demo-image-1", "demo-pro"]
    flash = rows(page, "demo-image-1")
    assert list(flash) == ["square", "portrait", "landscape", "tall", "wide"]
    assert cell(flash["square"], "USD estimate") == "$0.039"
    assert (cell(flash["square"], "Default"), cell(flash["square"], "Units")) == ("1", "1")
    pro = rows(page, "demo-pro")
    assert len(pro) == 10
    assert [cell(pro[r], "Units") for r in ("square", "square_2k")] == ["3", "6"]
    assert cell(pro["square"], "Override") == "\N{EN DASH}"


def test_an_override_changes_what_an_image_costs_and_clearing_it_restores_the_default(
    admin, app, db, admin_user
):
    assert cost(app, db, "demo-pro", "wide_2k") == 6
    _, said, errors = admin.act(
        "/admin/pricing/set",
        {"provider": "demo", "model": "demo-pro", "resolution": "wide_2k", "units": "8"},
    )
    assert errors == [] and said == ["Demo Pro wide_2k now costs 8 units (default 6)."]
    assert cost(app, db, "demo-pro", "wide_2k") == 8
    # Only that one: the same model's other sizes keep their price.
    assert cost(app, db, "demo-pro", "wide") == 3
    page = admin.get("/admin/pricing")
    row = rows(page, "demo-pro")["wide_2k"]
    assert (cell(row, "Default"), cell(row, "Override"), cell(row, "Units")) == ("6", "8", "8")
    assert row.select_one("input[name=units]")["value"] == "8"
    # Set again: the override moves.
    admin.act(
        "/admin/pricing/set",
        {"provider": "demo", "model": "demo-pro", "resolution": "wide_2k", "units": "7"},
    )
    assert cost(app, db, "demo-pro", "wide_2k") == 7
    _, said, _ = admin.act(
        "/admin/pricing/clear", {"provider": "demo", "model": "demo-pro", "resolution": "wide_2k"}
    )
    assert said == ["Demo Pro wide_2k is back to its default: 6 units."]
    assert cost(app, db, "demo-pro", "wide_2k") == 6
    entries = [r for r in audit_rows(db) if r.action.startswith("pricing.")]
    assert [(r.action, r.actor, r.surface, r.before, r.after) for r in entries] == [
        ("pricing.unit_price_set", admin_user.email, "web", None, {"units": 8}),
        ("pricing.unit_price_set", admin_user.email, "web", {"units": 8}, {"units": 7}),
        ("pricing.unit_price_cleared", admin_user.email, "web", {"units": 7}, {"units": 6}),
    ]
    assert {r.target_id for r in entries} == {"demo:demo-pro:wide_2k"}
    # Clearing again changes nothing, says so and writes nothing.
    _, said, _ = admin.act(
        "/admin/pricing/clear", {"provider": "demo", "model": "demo-pro", "resolution": "wide_2k"}
    )
    assert said == ["Demo Pro wide_2k had no override: it costs 6 units."]
    assert len([r for r in audit_rows(db) if r.action.startswith("pricing.")]) == 3


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"units": "0"}, "whole number of units from 1 to 1000"),
        ({"units": "1001"}, "whole number of units from 1 to 1000"),
        ({"units": "2.5"}, "whole number of units from 1 to 1000"),
        ({"units": ""}, "whole number of units from 1 to 1000"),
        ({"model": "nope"}, "There is no model 'nope' of provider 'demo'"),
        ({"provider": "openai"}, "of provider 'openai' enabled here"),
        ({"resolution": "huge"}, "has no resolution 'huge'"),
    ],
)
def test_a_bad_override_is_refused_with_its_reason_and_changes_nothing(admin, app, db, data, says):
    before = audit_rows(db)
    form = {"provider": "demo", "model": "demo-pro", "resolution": "square", "units": "5", **data}
    _, said, errors = admin.act("/admin/pricing/set", form)
    assert said == [] and len(errors) == 1 and says in errors[0], errors
    assert cost(app, db, "demo-pro", "square") == 3
    assert audit_rows(db) == before


def test_the_pages_forms_set_and_clear_a_price(admin, app, db):
    page = admin.app.get("/admin/pricing")
    [form] = [
        f for f in page.forms.values()
        if f.action.endswith("/set") and f["resolution"].value == "tall"
        and f["model"].value == "demo-image-1"
    ]  # fmt: skip
    form["units"] = "2"
    landed = form.submit().follow()
    assert cost(app, db, "demo-image-1", "tall") == 2
    [clear] = [
        f for f in landed.forms.values()
        if f.action.endswith("/clear") and f["resolution"].value == "tall"
    ]  # fmt: skip
    clear.submit().follow()
    assert cost(app, db, "demo-image-1", "tall") == 1
    after = admin.app.get("/admin/pricing").forms.values()
    assert not [f for f in after if f.action.endswith("/clear")]


def test_the_pricing_page_is_for_admins_only(browse, db, user_factory, app):
    user_factory("plain@example.com")
    user = browse().login("plain@example.com")
    before = audit_rows(db)
    form = {"provider": "demo", "model": "demo-pro", "resolution": "square", "units": "9"}
    assert user.get("/admin/pricing").status_int == 404
    assert user.post("/admin/pricing/set", form).status_int == 404
    assert user.post("/admin/pricing/clear", form).status_int == 404
    anonymous = browse()
    res = anonymous.get("/admin/pricing")
    assert res.status_int == 303 and "/login" in res.location
    assert anonymous.post("/admin/pricing/set", form).status_int == 303
    assert cost(app, db, "demo-pro", "square") == 3 and audit_rows(db) == before


def test_pricing_forms_need_the_csrf_token(admin, app, db):
    form = {"provider": "demo", "model": "demo-pro", "resolution": "square", "units": "9"}
    res = admin.post("/admin/pricing/set", form, csrf=False)
    assert res.status_int == 403 and "CSRF" in res.text
    assert cost(app, db, "demo-pro", "square") == 3
