"""The admin's credit packs pages (DESIGN 4.7, 4.12): every pack with its exact terms and the
balances bought from it that are usable now; adding and editing a pack through
``billing.packs`` (audited, surface web); a refused form shows the message next to the field at
fault and changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import alerts, audit_rows
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import packs as pack_service
from nproxy_core.billing.models import BalanceSource, CreditPack, PackBalance
from nproxy_core.db import utcnow

TESTER = Actor("tests", Surface.CLI)

NEW_PACK = {
    "code": "boost",
    "name": "Boost",
    "price": "9.90",
    "currency": "eur",
    "price_stars": "500",
    "units": "250",
    "valid_months": "6",
    "models": "demo-pro",
    "public": "1",
    "active": "1",
}


def packs(db: Any) -> dict[str, dict[str, Any]]:
    db.expire_all()
    return {p.code: pack_service.pack_view(p) for p in db.scalars(sa.select(CreditPack))}


def add(db: Any, code: str, **fields: Any) -> CreditPack:
    values = {"name": code.title(), "price": "5", "currency": "USD", "units": 100, **fields}
    pack = pack_service.add_pack(db, code, values, actor=TESTER)
    db.commit()
    return pack


def balance(db: Any, user: Any, pack: CreditPack, **kw: Any) -> PackBalance:
    now = utcnow()
    row = PackBalance(
        user_id=user.id,
        pack_id=pack.id,
        source=BalanceSource.PURCHASE,
        label=pack.name,
        units=pack.units,
        models=[],
        **{"starts_at": now - dt.timedelta(days=1), "expires_at": now + dt.timedelta(days=30)} | kw,
    )
    db.add(row)
    db.commit()
    return row


def test_the_list_shows_every_pack_exactly_with_its_usable_balances(admin, db, user_factory):
    small = add(db, "small", price="4.5", units=100, price_stars=300, valid_months=3)
    add(db, "pro-only", units=50, models=["demo-pro"], public=False)
    pack_service.edit_pack(db, "pro-only", {"active": False}, actor=TESTER)
    db.commit()
    buyer = user_factory("buyer@example.com")
    balance(db, buyer, small, used=30)
    balance(db, user_factory("b2@example.com"), small, reserved=20)
    # Not counted: expired, revoked, used up.
    balance(db, buyer, small, expires_at=utcnow() - dt.timedelta(days=1))
    balance(db, buyer, small, revoked_at=utcnow())
    balance(db, buyer, small, used=100)
    page = admin.get("/admin/packs")
    assert page.status_int == 200
    rows = {tr["data-pack"]: tr for tr in page.html.select("#pack-list tbody tr")}
    assert set(rows) == {"small", "pro-only"}

    def cell(code: str, label: str) -> str:
        return " ".join(rows[code].select_one(f'td[data-label="{label}"]').get_text(" ").split())

    assert cell("small", "Price") == "4.50 USD 300 Stars"
    assert (cell("small", "Units"), cell("small", "Valid")) == ("100", "3 mo")
    assert cell("small", "Balances now") == "2 150 units left"
    assert cell("small", "Models") == "all"
    assert cell("pro-only", "Models") == "demo-pro"
    assert cell("pro-only", "Balances now") == "0"
    assert "inactive" in cell("pro-only", "Flags") and "hidden" in cell("pro-only", "Flags")
    assert rows["pro-only"]["data-active"] == "false"


def test_an_admin_adds_a_pack_and_it_is_audited_as_theirs(admin, db, admin_user):
    res, said, errors = admin.act("/admin/packs", NEW_PACK)
    assert res.location.endswith("/admin/packs/boost")
    assert errors == [] and said == ["Added pack boost: 9.90 EUR, 250 units valid 6 months."]
    assert packs(db)["boost"] == {
        "code": "boost",
        "name": "Boost",
        "price": "9.90",
        "currency": "EUR",
        "price_stars": 500,
        "units": 250,
        "valid_months": 6,
        "models": ["demo-pro"],
        "public": True,
        "active": True,
        "translations": {},
    }
    [row] = audit_rows(db, "pack.add")
    assert (row.actor, row.surface, row.after["units"]) == (admin_user.email, "web", 250)


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"code": "Bad Code"}, "code", "code must be a slug"),
        ({"price": "0"}, "price", "a credit pack needs a price above 0"),
        ({"price": "x"}, "price", "price must be a number"),
        ({"units": "-3"}, "units", "units must be a whole number above 0"),
        ({"valid_months": "0"}, "valid_months", "valid_months must be a whole number above 0"),
        ({"currency": ""}, "currency", "currency must be 2 to 10 letters or digits"),
    ],
)
def test_a_bad_new_pack_is_shown_again_with_the_message_by_its_field(
    admin, db, change, field, says
):
    before, audit_before = packs(db), audit_rows(db)
    res = admin.post("/admin/packs", {**NEW_PACK, **change})
    assert res.status_int == 400
    box = res.html.find(id=f"{field}-error")
    assert box is not None and says in box.get_text(), res.text[:3000]
    assert res.html.find(id=field)["aria-invalid"] == "true"
    assert "Nothing was saved" in res.html.select_one("#form-error").get_text()
    assert res.html.find(id="name")["value"] == "Boost"
    assert packs(db) == before and audit_rows(db) == audit_before


def test_a_pack_code_is_unique(admin, db):
    add(db, "boost")
    before = audit_rows(db)
    res = admin.post("/admin/packs", NEW_PACK)
    assert res.status_int == 400
    assert "exists already" in res.html.find(id="code-error").get_text()
    assert packs(db)["boost"]["units"] == 100 and audit_rows(db) == before


def test_the_edit_form_saves_changes_and_only_they_are_audited(admin, db):
    add(db, "boost", units=100, models=["demo-pro"], price_stars=50)
    page = admin.app.get("/admin/packs/boost")
    res = page.forms["pack-form"].submit()
    assert res.status_int == 303
    assert alerts(res.follow(), "success") == ["Pack boost: nothing changed."]
    assert audit_rows(db, "pack.edit") == []
    form = admin.app.get("/admin/packs/boost").forms["pack-form"]
    form["units"] = "120"
    form["active"].checked = False
    assert alerts(form.submit().follow(), "success") == ["Pack boost saved: units, active changed."]
    after = packs(db)["boost"]
    assert (after["units"], after["active"], after["models"]) == (120, False, ["demo-pro"])
    [row] = audit_rows(db, "pack.edit")
    assert (row.surface, row.before) == ("web", {"units": 100, "active": True})


def test_a_bad_edit_changes_nothing_and_names_the_field(admin, db):
    add(db, "boost")
    before, audit_before = packs(db), audit_rows(db)
    form = admin.app.get("/admin/packs/boost").forms["pack-form"]
    form["name"] = "Renamed"
    form["valid_months"] = "soon"
    res = form.submit(status="*")
    assert res.status_int == 400
    assert "valid_months must be a whole number" in res.html.find(id="valid_months-error").text
    assert res.html.find(id="name")["value"] == "Renamed"
    assert res.html.select_one("h1").get_text().startswith("Boost ")
    assert packs(db) == before and audit_rows(db) == audit_before


def test_packs_pages_are_for_admins_only(browse, db, user_factory):
    add(db, "boost")
    user_factory("plain@example.com")
    user = browse().login("plain@example.com")
    before = packs(db)
    assert user.get("/admin/packs").status_int == 404
    assert user.get("/admin/packs/boost").status_int == 404
    assert user.post("/admin/packs", {**NEW_PACK, "code": "other"}).status_int == 404
    assert user.post("/admin/packs/boost/edit", {"units": "1"}).status_int == 404
    anonymous = browse()
    res = anonymous.get("/admin/packs")
    assert res.status_int == 303 and "/login" in res.location
    assert anonymous.post("/admin/packs/boost/edit", {"units": "1"}).status_int == 303
    assert packs(db) == before


def test_pack_forms_need_the_csrf_token_and_unknown_packs_are_404(admin, db):
    add(db, "boost")
    before = packs(db)
    res = admin.post("/admin/packs", {**NEW_PACK, "code": "other"}, csrf=False)
    assert res.status_int == 403 and "CSRF" in res.text
    assert admin.post("/admin/packs/boost/edit", {"units": "1"}, csrf=False).status_int == 403
    assert admin.get("/admin/packs/nope").status_int == 404
    assert admin.post("/admin/packs/nope/edit", {"units": "5"}).status_int == 404
    assert packs(db) == before
