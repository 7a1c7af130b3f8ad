"""What admins write for customers, in the customer's language (DESIGN 4.15): a plan's and a
pack's name, a template's title, description and fields, typed in Russian and Uzbek on the same
admin forms as the English, audited with the row, and shown per reader with English wherever
the admin wrote none."""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
import webtest

from admin_support import AdminBrowser, alerts, audit_rows
from apiclient import ApiClient
from nproxy_core.accounts.models import User
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import packs as pack_service
from nproxy_core.billing import plans as plan_service
from nproxy_core.billing.checkout import new_order_id
from nproxy_core.billing.models import BalanceSource, BillingCycle, CreditPack, Payment, Plan
from nproxy_core.billing.tasks import send_expiry_warnings
from nproxy_core.db import utcnow
from nproxy_core.prompt_templates.models import PromptTemplate
from nproxy_core.tasks import run_now

TESTER = Actor("tests", Surface.CLI)
RU, UZ = {"Accept-Language": "ru"}, {"Accept-Language": "uz"}


@pytest.fixture
def admin(app: Any, user_factory: Any) -> AdminBrowser:
    user_factory("boss@example.com", admin=True)
    return AdminBrowser(app).login("boss@example.com")


@pytest.fixture
def reader(app: Any, user_factory: Any) -> webtest.TestApp:
    """A logged-in customer (no saved language: each request's Accept-Language decides)."""
    user_factory("reader@example.com")
    ApiClient(app).login("reader@example.com")
    return app


def edit_form(admin: AdminBrowser, url: str) -> Any:
    """The edit form of an admin page, as a browser has it (the row's values filled in)."""
    page = admin.get(url)
    return next(f for f in page.forms.values() if (f.action or "").endswith("/edit"))


def saved(admin: AdminBrowser, form: Any) -> list[str]:
    answer = form.submit(status="*")
    assert answer.status_int == 303, answer.text[:500]
    page = admin.app.get(answer.location)
    assert alerts(page, "error") == []
    return alerts(page, "success")


def row(db: Any, model: Any, **where: Any) -> Any:
    db.expire_all()
    return db.scalar(sa.select(model).filter_by(**where))


# --- plans and packs ------------------------------------------------------------------------


def test_an_admin_translates_a_plans_name_and_the_edit_is_audited(admin, db):
    form = edit_form(admin, "/admin/plans/monthly")
    # The shipped plan's names came with the migration, on the form like the English.
    assert (form["name_ru"].value, form["name_uz"].value) == ("Месячный", "Oylik")
    form["name_ru"], form["name_uz"] = "Ежемесячный", ""
    assert saved(admin, form) == ["Plan monthly saved: translations changed."]
    assert row(db, Plan, code="monthly").translations == {"ru": {"name": "Ежемесячный"}}
    [entry] = audit_rows(db, "plan.edit")
    assert entry.surface == "web" and entry.actor == "boss@example.com"
    assert entry.before == {"translations": {"ru": {"name": "Месячный"}, "uz": {"name": "Oylik"}}}
    assert entry.after == {"code": "monthly", "translations": {"ru": {"name": "Ежемесячный"}}}


def test_a_translation_too_long_is_refused_by_name_and_nothing_changes(admin, db):
    before = plan_service.plan_view(row(db, Plan, code="monthly"))
    audit_before = audit_rows(db)
    form = edit_form(admin, "/admin/plans/monthly")
    form["name"], form["name_uz"] = "Renamed", "O" * 101
    answer = form.submit(status="*")
    assert answer.status_int == 400
    said = answer.html.find(id="name_uz-error").get_text()
    assert said == "The name in Uzbek is 101 characters long; at most 100 fit."
    assert answer.html.find(id="name_uz")["aria-invalid"] == "true"
    assert answer.html.find(id="name_uz")["value"] == "O" * 101  # kept as typed
    summary = " ".join(answer.html.find(id="form-error").get_text().split())
    assert summary == "Nothing was saved: name in Uzbek is not right (see below)."
    assert plan_service.plan_view(row(db, Plan, code="monthly")) == before
    assert audit_rows(db) == audit_before


def test_a_new_pack_gets_its_names_on_the_add_form(admin, db):
    answer = admin.post(
        "/admin/packs",
        {"code": "boost", "name": "Boost", "name_ru": "Ускорение", "name_uz": "Kuchaytirish",
         "price": "5", "currency": "USD", "units": "100", "valid_months": "12",
         "public": "1", "active": "1"},
    )  # fmt: skip
    assert answer.status_int == 303, answer.text[:300]
    pack = row(db, CreditPack, code="boost")
    assert pack.translations == {"ru": {"name": "Ускорение"}, "uz": {"name": "Kuchaytirish"}}
    [entry] = audit_rows(db, "pack.add")
    assert entry.after["translations"] == pack.translations


def test_customers_read_plan_and_pack_names_in_their_language_else_english(reader, db):
    plan_service.add_plan(
        db, "pro", {"name": "Professional", "price": "20", "currency": "USD", "units": 900,
                    "period_months": 1, "translations": {"ru": {"name": "Профессиональный"}}},
        actor=TESTER,
    )  # fmt: skip
    pack_service.add_pack(
        db, "boost", {"name": "Boost", "price": "5", "currency": "USD", "units": 100,
                      "translations": {"uz": {"name": "Kuchaytirish"}}},
        actor=TESTER,
    )  # fmt: skip
    db.commit()

    def names(headers: dict[str, str]) -> list[str]:
        page = reader.get("/pricing", headers=headers)
        return [h.get_text(strip=True) for h in page.html.select(".plan h2, #packs h3")]

    assert "Профессиональный" in names(RU) and "Месячный" in names(RU)
    # No Russian name for the pack: the English one, not a blank.
    assert "Boost" in names(RU)
    assert "Kuchaytirish" in names(UZ) and "Professional" in names(UZ) and "Oylik" in names(UZ)
    assert {"Professional", "Boost", "Monthly"} <= set(names({"Accept-Language": "en"}))
    plans = reader.get("/api/v1/plans", headers=RU).json["plans"]
    assert {p["code"]: p["name"] for p in plans}["pro"] == "Профессиональный"
    packs = reader.get("/api/v1/packs", headers=UZ).json["packs"]
    assert {p["code"]: p["name"] for p in packs}["boost"] == "Kuchaytirish"
    english = reader.get("/api/v1/plans", headers={"Accept-Language": "en"}).json["plans"]
    assert {p["code"]: p["name"] for p in english}["pro"] == "Professional"


def test_the_account_page_and_me_name_the_plan_and_packs_in_the_readers_language(
    reader, db, make_cycle
):
    me = db.scalar(sa.select(User).where(User.email == "reader@example.com"))
    make_cycle(me)
    pack = pack_service.add_pack(
        db, "boost", {"name": "Boost", "price": "5", "currency": "USD", "units": 100,
                      "translations": {"ru": {"name": "Ускорение"}}},
        actor=TESTER,
    )  # fmt: skip
    pack_service.grant_pack(
        db, me.id, units=100, label=pack.name, expires_at=utcnow() + dt.timedelta(days=300),
        source=BalanceSource.GRANT, pack=pack,
    )  # fmt: skip
    db.commit()
    page = reader.get("/dashboard", headers=RU)
    assert "Месячный" in page.html.select_one("#subscription").get_text()
    assert "Ускорение" in page.html.select_one("#packs").get_text()
    answer = reader.get("/api/v1/me", headers=RU).json
    assert answer["subscription"]["plan"]["name"] == "Месячный"
    assert [p["label"] for p in answer["packs"]] == ["Ускорение"]
    english = reader.get("/api/v1/me", headers={"Accept-Language": "en"}).json
    assert english["subscription"]["plan"]["name"] == "Monthly"
    assert [p["label"] for p in english["packs"]] == ["Boost"]


# --- templates ------------------------------------------------------------------------------


def test_the_shipped_templates_speak_russian_and_uzbek(reader):
    for headers in (RU, UZ):
        for template in reader.get("/api/v1/templates", headers=headers).json["templates"]:
            english_words = {"Sticker", "Poster", "Product shot", "Fursona from your photo"}
            assert template["title"] not in english_words, template["slug"]
            for field in template["fields"]:
                assert field["label"] not in {"Your photo", "Species", "Style", "Subject"}
    fursona = reader.get("/api/v1/templates", headers=RU).json["templates"][0]
    species = fursona["fields"][1]
    assert fursona["title"] == "Фурсона по вашему фото"
    assert species["label"] == "Животное"
    # The values sent stay English (the prompt is built from them); the labels are Russian.
    assert species["options"][:2] == ["Fox", "Wolf"]
    assert species["option_labels"][:2] == ["Лиса", "Волк"]


def test_an_admin_translates_a_template_and_customers_get_it_by_accept_language(admin, reader, db):
    form = edit_form(admin, "/admin/templates/sticker")
    assert form["title_ru"].value == "Стикер"
    form["title_uz"] = "Yopishqoq rasm"
    form["description_uz"] = "Har qanday narsaning stikeri."
    form["fields_uz"] = "subject | Mavzu\nstyle | Uslub | Multfilm, Kavaii, Yassi, Piksel"
    assert saved(admin, form) == ["Template sticker saved: translations changed."]
    [entry] = audit_rows(db, "template.edit")
    assert entry.surface == "web"
    assert entry.before["translations"]["uz"]["title"] == "Stiker"
    assert entry.after["translations"]["uz"]["title"] == "Yopishqoq rasm"
    assert entry.after["translations"]["uz"]["fields"]["style"] == {
        "label": "Uslub",
        "options": {"Cartoon": "Multfilm", "Kawaii": "Kavaii", "Flat vector": "Yassi",
                    "Pixel art": "Piksel"},
    }  # fmt: skip
    # The form shows them back as typed.
    again = edit_form(admin, "/admin/templates/sticker")
    assert (
        again["fields_uz"].value.splitlines()[1]
        == "style | Uslub | Multfilm, Kavaii, Yassi, Piksel"
    )

    def sticker(headers: dict[str, str]) -> dict[str, Any]:
        found = reader.get("/api/v1/templates", headers=headers).json["templates"]
        return next(t for t in found if t["slug"] == "sticker")

    uz = sticker(UZ)
    assert (uz["title"], uz["description"]) == ("Yopishqoq rasm", "Har qanday narsaning stikeri.")
    assert uz["fields"][1]["option_labels"] == ["Multfilm", "Kavaii", "Yassi", "Piksel"]
    assert uz["fields"][1]["options"] == ["Cartoon", "Kawaii", "Flat vector", "Pixel art"]
    assert sticker(RU)["title"] == "Стикер"
    english = sticker({"Accept-Language": "en"})
    assert english["title"] == "Sticker" and english["fields"][0]["label"] == "Subject"
    assert english["fields"][1]["option_labels"] == english["fields"][1]["options"]


def test_what_the_admin_leaves_untranslated_shows_in_english(admin, reader, db):
    form = edit_form(admin, "/admin/templates/poster")
    form["title_ru"], form["description_ru"], form["fields_ru"] = "", "", "theme | Тема"
    saved(admin, form)
    poster = next(
        t for t in reader.get("/api/v1/templates", headers=RU).json["templates"]
        if t["slug"] == "poster"
    )  # fmt: skip
    assert poster["title"] == "Poster"
    assert poster["description"] == "A poster with a headline, for an event or an idea."
    assert [f["label"] for f in poster["fields"]] == ["Headline", "Тема", "Style"]
    assert poster["fields"][2]["option_labels"] == ["Retro", "Minimal", "Bold modern", "Art deco"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("title_ru", "Я" * 101, "The title in Russian is 101 characters long; at most 100 fit."),
        ("fields_uz", "style | Uslub | Bir, Ikki",
         "Fields in Uzbek, line 1: style has 4 options in English and 2 here; give one for each, "
         "in the same order."),
        ("fields_ru", "colour | Цвет",
         "Fields in Russian, line 1: there is no field 'colour' (fields: subject, style)."),
        ("fields_ru", "subject | " + "Я" * 61,
         "Fields in Russian: the label of 'subject' is 61 characters long; at most 60 fit."),
    ],
)  # fmt: skip
def test_a_bad_template_translation_is_refused_by_its_field_and_nothing_changes(
    admin, db, name, value, message
):
    before = dict(row(db, PromptTemplate, slug="sticker").translations)
    audit_before = audit_rows(db)
    form = edit_form(admin, "/admin/templates/sticker")
    form["title"] = "Renamed sticker"
    form[name] = value
    answer = form.submit(status="*")
    assert answer.status_int == 400
    assert answer.html.find(id=f"t-{name}-error").get_text() == message
    assert answer.html.find(id=f"t-{name}")["aria-invalid"] == "true"
    found = row(db, PromptTemplate, slug="sticker")
    assert (found.title, found.translations) == ("Sticker", before)
    assert audit_rows(db) == audit_before


def test_the_payment_history_names_a_bought_pack_in_the_readers_language(reader, db):
    me = db.scalar(sa.select(User).where(User.email == "reader@example.com"))
    pack = pack_service.add_pack(
        db, "boost", {"name": "Boost", "price": "5", "currency": "USD", "units": 100,
                      "translations": {"ru": {"name": "Ускорение"}}},
        actor=TESTER,
    )  # fmt: skip
    db.add(
        Payment(
            order_id=new_order_id(), user_id=me.id, processor="demo", amount=Decimal("5"),
            currency="USD", status="finished", pack_id=pack.id, pack_units=100,
            pack_valid_months=12,
        )
    )  # fmt: skip
    db.commit()
    row = reader.get("/billing", headers=RU).html.select_one("table tbody tr").get_text()
    assert "Ускорение" in row and "Boost" not in row
    english = reader.get("/billing", headers={"Accept-Language": "en"}).html
    assert "Boost" in english.select_one("table tbody tr").get_text()


def test_a_russian_accounts_expiry_warning_names_the_admins_plan_in_russian(
    db, registry, outbox, user_factory
):
    plan = plan_service.add_plan(
        db, "family", {"name": "Family bundle", "price": "15", "currency": "USD", "units": 800,
                       "period_months": 1, "translations": {"ru": {"name": "Семейный набор"}}},
        actor=TESTER,
    )  # fmt: skip
    user = user_factory("anna@example.com")
    user.language = "ru"
    now = utcnow()
    db.add(
        BillingCycle(
            user_id=user.id, starts_at=now - dt.timedelta(days=25),
            ends_at=now + dt.timedelta(days=2, hours=12), period_months=1, plan_id=plan.id,
            request_limit=800,
        )
    )  # fmt: skip
    db.commit()
    assert run_now(registry, send_expiry_warnings) == 1
    assert "Семейный набор" in outbox[0]["body"] and "Family" not in outbox[0]["body"]


def test_the_migration_translates_only_what_an_admin_left_as_shipped():
    """An edited shipped template keeps no translation of words the admin changed: the reader
    sees the admin's English until the admin translates it."""
    migration = importlib.import_module("nproxy_core.migrations.versions.0027_translations")
    edited = SimpleNamespace(
        title="My sticker",  # changed
        description="A die-cut sticker of anything, with a white border.",
        fields=[
            {"name": "subject", "label": "What", "kind": "text", "options": []},  # changed
            {"name": "style", "label": "Style", "kind": "select",
             "options": ["Cartoon", "Watercolour"]},  # one shipped option kept
        ],
    )  # fmt: skip
    out = migration.template_translations(edited, migration.TEMPLATES["sticker"])
    assert out["ru"] == {
        "description": migration.TEMPLATES["sticker"]["ru"]["description"],
        "fields": {"style": {"label": "Стиль", "options": {"Cartoon": "Мультяшный"}}},
    }
    assert "title" not in out["uz"] and "subject" not in out["uz"]["fields"]
