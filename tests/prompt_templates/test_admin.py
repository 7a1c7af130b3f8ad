"""``/admin/templates`` through the real app: the list in gallery order, add and edit (refused
forms name the field and save nothing), show and hide, reorder, and "Make example" rendered
by the model through the normal generation path; every change is one audit row."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import webtest

from admin_support import audit_rows
from fakes.gemini import make_png
from nproxy_core.generation.models import Conversation, Generation
from nproxy_core.generation.tasks import run_generation
from nproxy_core.prompt_templates.models import PromptTemplate
from nproxy_core.tasks import run_now

FORM = {
    "title": "Mug mock-up",
    "description": "Your words on a mug.",
    "model": "",
    "resolution": "square",
    "prompt": "A white coffee mug with “{words}” printed on it, {style} style.",
    "fields": "words | Words | text\nstyle | Style | select | Serif, Script | optional",
    "active": "1",
}


def _order(db: Any) -> list[str]:
    db.expire_all()
    return list(db.scalars(sa.select(PromptTemplate.slug).order_by(PromptTemplate.position)))


def test_the_list_shows_the_shipped_templates_and_the_nav_links_it(admin):
    page = admin.get("/admin/templates")
    assert page.status_int == 200
    rows = [tr["data-template"] for tr in page.html.select("#template-list tr[data-template]")]
    assert rows == ["fursona", "sticker", "product-shot", "avatar", "poster"]
    nav = [a["href"] for a in page.html.select("nav.admin-nav a")]
    assert "/admin/templates" in nav


def test_only_admins_see_it(app, user_factory):
    from admin_support import AdminBrowser

    user = user_factory("someone@example.com")
    assert AdminBrowser(app).login(user.email).get("/admin/templates").status_int == 404


def test_add_a_template_audited_and_hidden_ones_stay_out_of_the_gallery(admin, db, alice):
    _, ok, errors = admin.act("/admin/templates", {**FORM, "slug": "mug", "active": ""})
    assert errors == [] and "hidden until you activate it" in ok[0]
    added = db.scalar(sa.select(PromptTemplate).where(PromptTemplate.slug == "mug"))
    assert added.fields == [
        {"name": "words", "label": "Words", "kind": "text", "options": [], "required": True},
        {
            "name": "style",
            "label": "Style",
            "kind": "select",
            "options": ["Serif", "Script"],
            "required": False,
        },
    ]
    assert _order(db)[-1] == "mug"
    [entry] = audit_rows(db, "template.add")
    assert (entry.target_id, entry.actor) == ("mug", "boss@example.com")
    gallery = [t["slug"] for t in alice.api.get("/api/v1/templates").json["templates"]]
    assert "mug" not in gallery

    admin.act("/admin/templates/mug/activate")
    gallery = [t["slug"] for t in alice.api.get("/api/v1/templates").json["templates"]]
    assert gallery[-1] == "mug"
    assert len(audit_rows(db, "template.activate")) == 1


def test_a_refused_form_names_the_field_and_saves_nothing(admin, db):
    before = _order(db)
    bad = {**FORM, "slug": "mug", "prompt": "A mug saying {words} in {colour}"}
    page = admin.post("/admin/templates", bad)
    assert page.status_int == 400
    assert "{colour}" in page.html.select_one("#t-prompt-error").get_text()
    assert page.html.select_one("#t-prompt")["aria-invalid"] == "true"
    page = admin.post("/admin/templates", {**FORM, "slug": "Bad Slug"})
    assert page.status_int == 400 and page.html.select_one("#t-slug-error")
    page = admin.post("/admin/templates", {**FORM, "slug": "mug", "fields": "words | Words"})
    assert page.status_int == 400 and page.html.select_one("#t-fields-error")
    page = admin.post("/admin/templates", {**FORM, "slug": "sticker"})
    assert page.status_int == 400 and "exists already" in page.text
    assert _order(db) == before
    assert audit_rows(db, "template.add") == []


def test_edit_hide_and_reorder_are_audited(admin, db):
    page = admin.get("/admin/templates/poster")
    form = {
        "title": "Event poster",
        "description": page.html.select_one("#t-description")["value"],
        "model": "",
        "resolution": "portrait",
        "prompt": page.html.select_one("#t-prompt").get_text(),
        "fields": page.html.select_one("#t-fields").get_text(),
        "active": "1",
    }
    _, ok, errors = admin.act("/admin/templates/poster/edit", form)
    assert errors == [] and ok == ["Template poster saved: title changed."]
    [entry] = audit_rows(db, "template.edit")
    assert (entry.before["title"], entry.after["title"]) == ("Poster", "Event poster")

    admin.act("/admin/templates/poster/move", {"direction": "up"})
    assert _order(db) == ["fursona", "sticker", "product-shot", "poster", "avatar"]
    admin.act("/admin/templates/fursona/move", {"direction": "up"})  # already first
    assert _order(db)[0] == "fursona"
    assert len(audit_rows(db, "template.move")) == 1

    admin.act("/admin/templates/sticker/deactivate")
    db.expire_all()
    assert (
        db.scalar(sa.select(PromptTemplate.active).where(PromptTemplate.slug == "sticker")) is False
    )
    assert [e.action for e in audit_rows(db)][-1] == "template.deactivate"


def test_make_example_renders_through_the_model_and_keeps_the_image(
    admin, app, add_key, db, admin_user
):
    add_key(app.app.registry, "demo-key-1")
    page = admin.get("/admin/templates/fursona")
    assert "No example yet" in page.text
    res = admin.app.post(
        "/admin/templates/fursona/example",
        {
            "csrf_token": admin.csrf(),
            "input.species": "Fox",
            "input.colours": "red and white",
        },
        upload_files=[("input.photo", "me.png", make_png(40, 40))],
        status="*",
    )
    assert res.status_int == 303
    made = db.scalar(sa.select(Generation))
    assert made.user_id == admin_user.id
    conversation = db.get(Conversation, made.conversation_id)
    assert conversation.title == "Template examples"
    pending = admin.get("/admin/templates/fursona")
    assert pending.html.select_one("#example-pending")
    assert run_now(app.app.registry, run_generation, str(made.id)) == "succeeded"

    shown = admin.get("/admin/templates/fursona")
    img = shown.html.select_one("#template-example img.example")
    assert img is not None
    [entry] = audit_rows(db, "template.example")
    assert entry.after["example"].startswith("templates/fursona/")
    assert len(audit_rows(db, "template.make_example")) == 1
    # Public, like the gallery: no cookies needed.
    anonymous = webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"})
    image = anonymous.get(img["src"])
    assert image.content_type == "image/png" and image.body.startswith(b"\x89PNG")
    listed = admin.get("/admin/templates")
    assert listed.html.select_one('tr[data-template="fursona"] img.example-thumb')
