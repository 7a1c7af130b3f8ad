"""Templates: the gallery's rows, turning a ``{template, inputs}`` submission into an ordinary
one, and the admin's audited changes (add, edit, show or hide, reorder, set the example).

The chat, ``/v1/generate`` and the admin's "Make example" all submit through
``generation.services``; this module only builds the body they submit, so a template's
generation is checked, charged and run exactly like a typed prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.audit import Actor
from nproxy_core.db import utcnow
from nproxy_core.errors import NotFound, ValidationError
from nproxy_core.plugins import Mode, Provider
from nproxy_core.prompt_templates import schemas
from nproxy_core.prompt_templates.models import PromptTemplate, TemplateRun

#: Columns an admin edits, in form order.
EDITABLE = (
    "title",
    "description",
    "prompt",
    "fields",
    "model",
    "resolution",
    "with_text",
    "active",
    "translations",
)


def _invalid(field: str, message: str, reason: str = "invalid") -> ValidationError:
    return ValidationError(message, fields={field: reason})


def gallery(db: Session) -> list[PromptTemplate]:
    """Active templates in gallery order."""
    return list(
        db.scalars(
            sa.select(PromptTemplate)
            .where(PromptTemplate.active.is_(True))
            .order_by(PromptTemplate.position, PromptTemplate.id)
        )
    )


def every_template(db: Session) -> list[PromptTemplate]:
    return list(
        db.scalars(sa.select(PromptTemplate).order_by(PromptTemplate.position, PromptTemplate.id))
    )


def by_slug(db: Session, slug: Any) -> PromptTemplate:
    """Any template, active or not (the admin's), or NotFound."""
    found = None
    if isinstance(slug, str) and schemas.SLUG.fullmatch(slug):
        found = db.scalar(sa.select(PromptTemplate).where(PromptTemplate.slug == slug))
    if found is None:
        raise NotFound("Not found.")
    return found


def usable(db: Session, slug: Any) -> PromptTemplate:
    """The active template ``slug``, or 400 naming ``template``."""
    if not isinstance(slug, str):
        raise _invalid("template", "The template must be the slug of a template, e.g. sticker.")
    found = None
    if schemas.SLUG.fullmatch(slug):
        found = db.scalar(
            sa.select(PromptTemplate).where(
                PromptTemplate.slug == slug, PromptTemplate.active.is_(True)
            )
        )
    if found is None:
        raise _invalid("template", f"Unknown template {slug[:64]!r}.", "unknown")
    return found


def _provider_for(template: PromptTemplate, providers: Mapping[str, Provider]) -> str | None:
    """The first enabled provider offering the template's model (None: the default one)."""
    if template.model is None:
        return None
    for name, provider in providers.items():
        for caps in provider.capabilities():
            if template.model == caps.model or template.model in caps.aliases:
                return name
    raise _invalid(
        "template",
        f"The template {template.slug!r} needs the model {template.model}, which is not "
        "available now.",
        "unavailable",
    )


def template_submission(
    db: Session,
    body: Mapping[str, Any],
    providers: Mapping[str, Provider],
    *,
    hidden_too: bool = False,
) -> tuple[dict[str, Any], PromptTemplate, schemas.Filled]:
    """The ordinary submission body for a ``{template, inputs}`` one, the template and what
    its inputs filled in (``hidden_too``: inactive templates as well). ``batch_size`` and
    ``provider`` pass through; a prompt, a mode,
    input images, a model or a resolution beside a template are refused (the template
    decides them)."""
    clash = sorted(set(body) - {"template", "inputs"} - schemas.SUBMISSION_EXTRAS)
    if clash:
        raise _invalid(
            clash[0],
            f"A template submission takes template, inputs and batch_size; "
            f"{clash[0][:40]!r} is decided by the template.",
            "not_allowed",
        )
    # An admin makes examples of hidden templates too, before showing them.
    template = by_slug(db, body.get("template")) if hidden_too else usable(db, body.get("template"))
    filled = schemas.fill(template.prompt, schemas.read_fields(template.fields), body.get("inputs"))
    submission: dict[str, Any] = {
        "mode": str(Mode.IMAGE_TO_IMAGE if filled.upload_ids else Mode.TEXT_TO_IMAGE),
        "prompt": filled.prompt,
    }
    provider = body.get("provider") or _provider_for(template, providers)
    if provider is not None:
        submission["provider"] = provider
    if template.model is not None:
        submission["model"] = template.model
    if template.resolution is not None:
        submission["resolution"] = template.resolution
    if body.get("batch_size") is not None:
        submission["batch_size"] = body["batch_size"]
    if filled.upload_ids:
        submission["input_upload_ids"] = list(filled.upload_ids)
    return submission, template, filled


def record_run(
    db: Session,
    generation_id: Any,
    template: PromptTemplate | None,
    inputs: dict[str, Any],
    *,
    with_text: bool,
) -> TemplateRun:
    run = TemplateRun(
        generation_id=generation_id,
        template_id=None if template is None else template.id,
        inputs=inputs,
        with_text=with_text,
    )
    db.add(run)
    return run


def run_of(db: Session, generation_id: Any) -> TemplateRun | None:
    return db.get(TemplateRun, generation_id)


def texts_of(db: Session, generation_ids: list[Any]) -> dict[Any, str]:
    """Generation id → the model's words, for those that have some."""
    if not generation_ids:
        return {}
    rows = db.execute(
        sa.select(TemplateRun.generation_id, TemplateRun.text).where(
            TemplateRun.generation_id.in_(generation_ids), TemplateRun.text.is_not(None)
        )
    )
    return {gid: text for gid, text in rows}


# --- the admin's changes --------------------------------------------------------------------


def template_view(template: PromptTemplate) -> dict[str, Any]:
    """What the audit log records of a template."""
    return {
        "slug": template.slug,
        "title": template.title,
        "description": template.description,
        "prompt": template.prompt,
        "fields": list(template.fields),
        "model": template.model,
        "resolution": template.resolution,
        "with_text": template.with_text,
        "active": template.active,
        "position": template.position,
        "example": template.storage_key,
        "translations": dict(template.translations or {}),
    }


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    """The editable columns of ``values``, checked; each refusal names its field."""
    out: dict[str, Any] = {}
    fields = schemas.check_fields(values.get("fields"))
    out["fields"] = [f.as_dict() for f in fields]
    out["title"] = schemas.text_value(
        values.get("title"), "title", "title", schemas.TITLE_MAX_CHARS
    )
    out["description"] = schemas.text_value(
        values.get("description"),
        "description",
        "description",
        schemas.DESCRIPTION_MAX_CHARS,
        required=False,
    )
    out["prompt"] = schemas.check_prompt(values.get("prompt"), fields)
    if "translations" in values:
        # Checked against the fields above: a translation names a field or an option by its
        # English name, which the same edit may have changed.
        out["translations"] = schemas.check_translations(values["translations"], fields)
    for name, limit in (("model", 128), ("resolution", 64)):
        value = schemas.text_value(values.get(name), name, name, limit, required=False)
        out[name] = value or None
    for flag in ("with_text", "active"):
        value = values.get(flag, False)
        if not isinstance(value, bool):
            raise _invalid(flag, f"{flag} must be true or false.")
        out[flag] = value
    return out


def add_template(
    db: Session, slug: Any, values: Mapping[str, Any], *, actor: Actor
) -> PromptTemplate:
    """A new template, last in the gallery. One audit row, ``template.add``."""
    slug = schemas.check_slug(slug)
    if db.scalar(sa.select(PromptTemplate.id).where(PromptTemplate.slug == slug)) is not None:
        raise _invalid("slug", f"A template with the slug {slug!r} exists already.", "taken")
    checked = _checked(values)
    last = db.scalar(sa.select(sa.func.max(PromptTemplate.position))) or 0
    now = utcnow()
    template = PromptTemplate(
        slug=slug, position=last + 10, created_at=now, updated_at=now, **checked
    )
    db.add(template)
    db.flush()
    actor.record(db, "template.add", "template", slug, after=template_view(template))
    return template


def edit_template(
    db: Session, slug: Any, values: Mapping[str, Any], *, actor: Actor
) -> PromptTemplate:
    """Change a template (every editable column given). One audit row, ``template.edit``
    (none when nothing changed)."""
    template = by_slug(db, slug)
    before = template_view(template)
    checked = _checked(values)
    for name, value in checked.items():
        setattr(template, name, value)
    after = template_view(template)
    if after != before:
        template.updated_at = utcnow()
        db.flush()
        actor.record(db, "template.edit", "template", template.slug, before=before, after=after)
    return template


def set_active(db: Session, slug: Any, active: bool, *, actor: Actor) -> PromptTemplate:
    """Show or hide a template in the gallery. One audit row, ``template.activate`` or
    ``template.deactivate`` (none when it already was)."""
    template = by_slug(db, slug)
    if template.active != active:
        template.active = active
        template.updated_at = utcnow()
        db.flush()
        actor.record(
            db,
            "template.activate" if active else "template.deactivate",
            "template",
            template.slug,
            before={"active": not active},
            after={"active": active},
        )
    return template


def move(db: Session, slug: Any, step: int, *, actor: Actor) -> PromptTemplate:
    """Move a template one place up (``step`` -1) or down (+1) in the gallery: it swaps
    places with its neighbour. One audit row, ``template.move``; none at either end."""
    template = by_slug(db, slug)
    order = every_template(db)
    at = order.index(template)
    other_at = at + (1 if step > 0 else -1)
    if not 0 <= other_at < len(order):
        return template
    # Renumbered whole: equal positions (rows added by hand) still move.
    order[at], order[other_at] = order[other_at], order[at]
    before = template.position
    for n, row in enumerate(order, start=1):
        row.position = n * 10
    db.flush()
    actor.record(
        db,
        "template.move",
        "template",
        template.slug,
        before={"position": before},
        after={"position": template.position},
    )
    return template
