"""Templates (DESIGN 4.17): the gallery's rows, in order; add one, edit one, show or hide it,
move it up or down, and "Make example": the template rendered by the model through the normal
generation path, as the admin (their units, their conversation "Template examples"), whose
image becomes the template's example once it is made. Every change is one audited service call
(``prompt_templates.services``); a refused form comes back as typed, the message by its field.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response

from nproxy_core.admin.page import actor, admin_action, admin_page, base, form
from nproxy_core.admin.views.plans import field_at_fault, refused
from nproxy_core.errors import APIError, ValidationError
from nproxy_core.generation import services as generation
from nproxy_core.generation.models import (
    TERMINAL,
    Conversation,
    Generation,
    GenerationImage,
)
from nproxy_core.i18n.fields import ENGLISH_NAMES, TRANSLATED, form_name
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.prompt_templates import schemas
from nproxy_core.prompt_templates import services as templates
from nproxy_core.prompt_templates.models import PromptTemplate
from nproxy_core.prompt_templates.views import example_url
from nproxy_core.storage import IStorage, delete_after_commit, validate_key
from nproxy_core.uploads.services import create_upload

#: The admin's own conversation that holds the generations behind examples.
EXAMPLES_TITLE = "Template examples"
#: The editable fields of the form, as shown: (name, label, kind, hint).
FORM_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("title", "Title", "text", "shown in the gallery"),
    ("description", "Description", "text", "one sentence under the title"),
    ("model", "Model", "text", "empty: the default model"),
    ("resolution", "Resolution", "text", "a preset of the model, e.g. square; empty: its default"),
)
#: What each language's part of the form holds: the title, the description, the fields.
TRANSLATED_FIELDS = ("title", "description", "fields")
#: The languages of that part, as the (English) admin names them: (code, name).
TRANSLATION_LANGUAGES = tuple((language, ENGLISH_NAMES[language]) for language in TRANSLATED)


# --- the fields as admins type them ----------------------------------------------------------


def fields_text(fields: list[dict[str, Any]]) -> str:
    """One line per field: ``name | Label | kind | option, option | optional``."""
    lines = []
    for f in fields:
        parts = [f["name"], f["label"], f["kind"]]
        if f.get("options") or not f.get("required", True):
            parts.append(", ".join(f.get("options") or ()))
        if not f.get("required", True):
            parts.append("optional")
        lines.append(" | ".join(parts))
    return "\n".join(lines)


def parse_fields_text(text: str) -> list[dict[str, Any]]:
    """The lines of :func:`fields_text` back as field objects (checked by the service)."""
    fields: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 3 or len(parts) > 5:
            raise ValidationError(
                f"Fields, line {n}: write name | Label | kind, then options and 'optional' "
                "if needed.",
                fields={"fields": "invalid"},
            )
        options = [o.strip() for o in parts[3].split(",")] if len(parts) > 3 else []
        flag = parts[4].lower() if len(parts) > 4 else "required"
        if flag not in ("optional", "required"):
            raise ValidationError(
                f"Fields, line {n}: the last part must be optional or required.",
                fields={"fields": "invalid"},
            )
        fields.append(
            {
                "name": parts[0],
                "label": parts[1],
                "kind": parts[2].lower(),
                "options": [o for o in options if o],
                "required": flag == "required",
            }
        )
    return fields


def translated_fields_text(fields: list[dict[str, Any]], texts: dict[str, Any]) -> str:
    """A language's translations of the fields, one line per translated field: ``name |
    Label | option, option`` (the options in the English order; an untranslated one as the
    English)."""
    lines = []
    for f in fields:
        entry = texts.get(f["name"])
        if not entry:
            continue
        parts = [f["name"], entry.get("label") or ""]
        names = entry.get("options") or {}
        if names:
            parts.append(", ".join(names.get(o) or o for o in f.get("options") or ()))
        lines.append(" | ".join(parts))
    return "\n".join(lines)


def parse_translated_fields_text(
    text: str, fields: list[dict[str, Any]], language: str
) -> dict[str, Any]:
    """The lines of :func:`translated_fields_text` back as ``{name: {label, options}}``, the
    options matched to the English ones by place (checked by the service)."""
    where = form_name("fields", language)
    in_language = f"Fields in {ENGLISH_NAMES[language]}"
    by_name = {f["name"]: f for f in fields}
    out: dict[str, Any] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) not in (2, 3):
            raise ValidationError(
                f"{in_language}, line {n}: write name | Label, then the options in the "
                "English order if it has some.",
                fields={where: "invalid"},
            )
        field = by_name.get(parts[0])
        if field is None:
            raise ValidationError(
                f"{in_language}, line {n}: there is no field {parts[0][:40]!r} "
                f"(fields: {', '.join(by_name) or 'none'}).",
                fields={where: "invalid"},
            )
        entry: dict[str, Any] = {"label": parts[1]}
        if len(parts) == 3 and parts[2]:
            english = list(field.get("options") or ())
            options = [o.strip() for o in parts[2].split(",")]
            if len(options) != len(english):
                raise ValidationError(
                    f"{in_language}, line {n}: {parts[0]} has {len(english)} options in "
                    f"English and {len(options)} here; give one for each, in the same order.",
                    fields={where: "invalid"},
                )
            entry["options"] = dict(zip(english, options, strict=True))
        out[parts[0]] = entry
    return out


def _posted(request: Request) -> dict[str, Any]:
    values: dict[str, Any] = {name: form(request, name) for name, *_ in FORM_FIELDS}
    for language in TRANSLATED:
        for field in TRANSLATED_FIELDS:
            if form_name(field, language) in request.POST:
                values[form_name(field, language)] = form(request, form_name(field, language))
    values["prompt"] = form(request, "prompt")
    values["fields_text"] = form(request, "fields")
    values["with_text"] = request.POST.get("with_text") == "1"
    values["active"] = request.POST.get("active") == "1"
    return values


def _values(template: PromptTemplate) -> dict[str, Any]:
    return {
        "title": template.title,
        "description": template.description,
        "model": template.model or "",
        "resolution": template.resolution or "",
        "prompt": template.prompt,
        "fields_text": fields_text(template.fields),
        "with_text": template.with_text,
        "active": template.active,
        **_translation_values(template),
    }


def _translation_values(template: PromptTemplate) -> dict[str, str]:
    values = {}
    for language in TRANSLATED:
        texts = (template.translations or {}).get(language) or {}
        values[form_name("title", language)] = texts.get("title") or ""
        values[form_name("description", language)] = texts.get("description") or ""
        values[form_name("fields", language)] = translated_fields_text(
            template.fields, texts.get("fields") or {}
        )
    return values


def _for_service(values: dict[str, Any]) -> dict[str, Any]:
    fields = parse_fields_text(values["fields_text"])
    if not any(form_name(f, lang) in values for f in TRANSLATED_FIELDS for lang in TRANSLATED):
        # A form without the translations (a script's) leaves them as they are.
        return {**values, "fields": fields}
    translations = {
        language: {
            "title": values.get(form_name("title", language)) or "",
            "description": values.get(form_name("description", language)) or "",
            "fields": parse_translated_fields_text(
                values.get(form_name("fields", language)) or "", fields, language
            ),
        }
        for language in TRANSLATED
    }
    return {**values, "fields": fields, "translations": translations}


# --- examples -------------------------------------------------------------------------------


def settle_example(request: Request, template: PromptTemplate) -> str | None:
    """If the template's pending example generation has ended, keep its first image as the
    example (a copy of its own, so deleting the admin's conversation leaves it) or let the
    failure go; the failure's message, if it failed."""
    if template.example_generation_id is None:
        return None
    made = request.db.get(Generation, template.example_generation_id)
    if made is None or made.status not in TERMINAL:
        return None
    template.example_generation_id = None
    image = request.db.scalar(
        sa.select(GenerationImage)
        .where(GenerationImage.generation_id == made.id)
        .order_by(GenerationImage.n)
        .limit(1)
    )
    if image is None:
        return made.error_message or "The example could not be made."
    storage = request.find_service(IStorage)
    ext = image.storage_key.rsplit(".", 1)[-1]
    key = validate_key(f"templates/{template.slug}/{uuid.uuid4().hex}.{ext}")
    storage.put(key, storage.get(image.storage_key), image.mime)
    old = template.storage_key
    before = {"example": old}
    template.storage_key, template.example_mime = key, image.mime
    if old:
        delete_after_commit(request, [old])
    actor(request).record(
        request.db, "template.example", "template", template.slug, before, {"example": key}
    )
    return None


def _examples_conversation(request: Request) -> uuid.UUID:
    user_id = request.identity.id
    found = request.db.scalar(
        sa.select(Conversation.id).where(
            Conversation.user_id == user_id, Conversation.title == EXAMPLES_TITLE
        )
    )
    if found is not None:
        return found
    return generation.create_conversation(request.db, user_id, EXAMPLES_TITLE).id


def make_example(request: Request, template: PromptTemplate) -> Generation:
    """Submit the template, filled with the admin's inputs (image fields as uploaded files), as
    the admin's own generation; it becomes the example once it has an image. One audit row,
    ``template.make_example``."""
    inputs: dict[str, str] = {}
    for field in schemas.read_fields(template.fields):
        if field.kind == "image":
            upload = request.POST.get(f"input.{field.name}")
            data = upload.file.read() if hasattr(upload, "file") else b""
            if data:
                made = create_upload(request, request.identity.id, data)
                inputs[field.name] = str(made.id)
        else:
            inputs[field.name] = form(request, f"input.{field.name}")
    providers = request.find_service(IPlugins).providers
    built, _, filled = templates.template_submission(
        request.db, {"template": template.slug, "inputs": inputs}, providers, hidden_too=True
    )
    made, _ = generation.submit_generation(
        request, request.identity.id, _examples_conversation(request), built
    )
    templates.record_run(request.db, made.id, template, filled.inputs, with_text=template.with_text)
    template.example_generation_id = made.id
    actor(request).record(
        request.db,
        "template.make_example",
        "template",
        template.slug,
        after={"generation": str(made.id), "inputs": filled.inputs},
    )
    return made


# --- pages ----------------------------------------------------------------------------------


def _list_page(request: Request, **form_state: Any) -> dict[str, Any]:
    rows = templates.every_template(request.db)
    for row in rows:
        settle_example(request, row)
    values = form_state.pop("values", None) or {
        "active": False,
        "fields_text": "subject | Subject | text",
        "prompt": "A picture of {subject}.",
    }
    return base(
        request,
        "templates",
        templates=rows,
        fields=FORM_FIELDS,
        translation_languages=TRANSLATION_LANGUAGES,
        values=values,
        example_url=lambda t: _example_url(request, t),
        **{"error": None, "error_field": None, **form_state},
    )


def _example_url(request: Request, template: PromptTemplate) -> str | None:
    return example_url(request, template)


@admin_page("admin.templates", "templates.html")
def templates_page(request: Request) -> dict[str, Any]:
    return _list_page(request)


@admin_action("admin.templates")
def template_add(request: Request) -> Response:
    slug = form(request, "slug").strip()
    values = _posted(request)
    try:
        added = templates.add_template(request.db, slug, _for_service(values), actor=actor(request))
    except APIError as exc:
        context = _list_page(
            request, values={"slug": slug, **values}, error_field=field_at_fault(exc, "slug")
        )
        return refused(request, "templates.html", exc, context)
    request.session.flash(
        f"Added template {added.title} ({added.slug})"
        + ("." if added.active else ", hidden until you activate it."),
        "success",
    )
    return HTTPSeeOther(request.route_path("admin.template", slug=added.slug))


def _template_page(request: Request, template: PromptTemplate, **form_state: Any) -> dict[str, Any]:
    failure = settle_example(request, template)
    pending = None
    if template.example_generation_id is not None:
        pending = request.db.get(Generation, template.example_generation_id)
    return base(
        request,
        "templates",
        template=template,
        fields=FORM_FIELDS,
        translation_languages=TRANSLATION_LANGUAGES,
        template_fields=schemas.read_fields(template.fields),
        values=form_state.pop("values", None) or _values(template),
        example_url=_example_url(request, template),
        example_failure=failure,
        pending=pending,
        **{"error": None, "error_field": None, **form_state},
    )


@admin_page("admin.template", "template.html")
def template_page(request: Request) -> dict[str, Any]:
    return _template_page(request, templates.by_slug(request.db, request.matchdict["slug"]))


@admin_action("admin.template.edit")
def template_edit(request: Request) -> Response:
    found = templates.by_slug(request.db, request.matchdict["slug"])
    values = _posted(request)
    before = templates.template_view(found)
    try:
        edited = templates.edit_template(
            request.db, found.slug, _for_service(values), actor=actor(request)
        )
    except APIError as exc:
        request.db.expire(found)
        context = _template_page(
            request, found, values=values, error_field=field_at_fault(exc, "fields")
        )
        return refused(request, "template.html", exc, context)
    after = templates.template_view(edited)
    changed = [k for k in after if after[k] != before[k]]
    request.session.flash(
        f"Template {edited.slug} saved: {', '.join(changed)} changed."
        if changed
        else f"Template {edited.slug}: nothing changed.",
        "success",
    )
    return HTTPSeeOther(request.route_path("admin.template", slug=edited.slug))


def _back(request: Request) -> str:
    # From the list, back to the list; from a template's page, back to it.
    if request.POST.get("back") == "list":
        return request.route_path("admin.templates")
    return request.route_path("admin.template", slug=request.matchdict["slug"])


@admin_action("admin.template.activate")
def template_activate(request: Request) -> Response:
    row = templates.set_active(request.db, request.matchdict["slug"], True, actor=actor(request))
    request.session.flash(f"{row.title} is in the gallery.", "success")
    return HTTPSeeOther(_back(request))


@admin_action("admin.template.deactivate")
def template_deactivate(request: Request) -> Response:
    row = templates.set_active(request.db, request.matchdict["slug"], False, actor=actor(request))
    request.session.flash(f"{row.title} is hidden from the gallery.", "success")
    return HTTPSeeOther(_back(request))


@admin_action("admin.template.move")
def template_move(request: Request) -> Response:
    step = -1 if request.POST.get("direction") == "up" else 1
    row = templates.move(request.db, request.matchdict["slug"], step, actor=actor(request))
    request.session.flash(f"Moved {row.title} {'up' if step < 0 else 'down'}.", "success")
    return HTTPSeeOther(request.route_path("admin.templates"))


@admin_action("admin.template.example")
def template_example(request: Request) -> Response:
    found = templates.by_slug(request.db, request.matchdict["slug"])
    back = request.route_path("admin.template", slug=found.slug)
    try:
        make_example(request, found)
    except APIError as exc:
        request.tm.doom()
        request.session.flash(f"No example was started: {exc.message}", "error")
        return HTTPSeeOther(back)
    request.session.flash(
        "The example is being made by the model; this page shows it when it is ready.", "success"
    )
    return HTTPSeeOther(back)
