"""Plans (DESIGN 4.12): every plan with its exact terms and how many cycles run on it now; add
one, edit one. The forms call ``billing.plans.add_plan`` / ``edit_plan`` (validated, audited
``plan.add`` / ``plan.edit`` with surface ``web``), the same as ``nproxy plans add/edit``.

A refused form is shown again as typed, its message next to the field at fault, with nothing
changed; a saved one answers 303 with a flash message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy.orm import Session

from nproxy_core.admin.page import actor, admin_action, admin_page, base, form
from nproxy_core.billing import plans as plan_service
from nproxy_core.billing.interfaces import IPlans
from nproxy_core.billing.models import BillingCycle, Plan
from nproxy_core.db import utcnow
from nproxy_core.errors import APIError, NotFound
from nproxy_core.i18n.fields import ENGLISH_NAMES, TRANSLATED, form_name
from nproxy_core.plugin_registry import IPlugins

#: The name in each language a buyer may read (``i18n.fields``): optional, blank shows the
#: English name.
NAME_TRANSLATIONS: tuple[tuple[str, str, str, str], ...] = tuple(
    (form_name("name", language), f"Name in {ENGLISH_NAMES[language]}", "translation",
     "empty: the English name")
    for language in TRANSLATED
)  # fmt: skip
#: The fields of the plan form, in order: (name, label, kind, hint). Kinds: ``text``,
#: ``number`` (a whole number), ``optional`` (a whole number or empty), ``models``, ``flag``,
#: ``translation`` (``<field>_<language>``, kept together in ``translations``).
PLAN_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("name", "Name", "text", "shown to buyers"),
    *NAME_TRANSLATIONS,
    ("price", "Price", "text", "0 only for a free plan"),
    ("currency", "Currency", "text", "USD, EUR, …"),
    ("price_stars", "Price in Stars", "optional", "empty: not sold for Telegram Stars"),
    ("period_months", "Period (months)", "number", ""),
    ("units", "Units per cycle", "number", ""),
    ("max_batch", "Max batch", "optional", "empty: each model's own"),
    ("api_rate_limit", "API rate limit", "text", "like 60/minute; empty: the default"),
    ("models", "Models", "models", "none ticked: every model"),
    ("public", "Public (on the pricing page)", "flag", ""),
    ("free", "Free (price 0; Start free)", "flag", ""),
    ("recurring_allowed", "Recurring payments allowed", "flag", ""),
    ("active", "Active (sellable)", "flag", ""),
)
#: The add form also asks for the code, which never changes after.
CODE_FIELD = ("code", "Code", "text", "a slug like pro-yearly; it cannot change later")


def offer_fields(request: Request, spec: tuple[tuple[str, str, str, str], ...]) -> dict[str, Any]:
    """The posted form as the catalogue services take it: text as typed (they validate and
    say what is wrong), empty optional numbers as None, ticked models, flags as booleans."""
    fields: dict[str, Any] = {}
    for name, _label, kind, _hint in spec:
        if kind == "translation":
            if name not in request.POST:
                continue  # a form without it (a script's) leaves the translation alone
            field, language = name.rsplit("_", 1)
            texts = fields.setdefault("translations", {}).setdefault(language, {})
            texts[field] = form(request, name)
        elif kind == "models":
            fields[name] = [m for m in request.POST.getall(name) if isinstance(m, str)]
        elif kind == "flag":
            fields[name] = form(request, name) in ("1", "on", "true")
        elif kind == "optional" or name == "api_rate_limit":
            value = form(request, name).strip()
            fields[name] = value or None
        else:
            fields[name] = form(request, name).strip()
    return fields


def field_at_fault(exc: APIError, default: str | None = None) -> str | None:
    """The form field a refusal names (its first), or ``default``."""
    return next(iter(exc.fields), default)


def refused(request: Request, template: str, exc: APIError, context: Mapping[str, Any]) -> Response:
    """The form again, as typed, with the refusal's message; nothing is kept (doomed)."""
    request.tm.doom()
    response = render_to_response(
        f"admin/{template}", {**context, "error": exc.message}, request=request
    )
    response.status = 404 if exc.status == 404 else 400
    return response


def known_models(request: Request, *extra: list[str]) -> list[tuple[str, str]]:
    """(model id, label) of every enabled model, then any other id a row still names."""
    models: dict[str, str] = {}
    for provider in request.find_service(IPlugins).providers.values():
        for caps in provider.capabilities():
            models.setdefault(caps.model, caps.display_name)
    for ids in extra:
        for model in ids or ():
            models.setdefault(model, f"{model} (not enabled)")
    return list(models.items())


def running_cycles(db: Session) -> dict[int, int]:
    """Plan id → the cycles running now on it."""
    now = utcnow()
    rows = db.execute(
        sa.select(BillingCycle.plan_id, sa.func.count())
        .where(BillingCycle.starts_at <= now, BillingCycle.ends_at > now)
        .group_by(BillingCycle.plan_id)
    )
    return {plan_id: count for plan_id, count in rows}


def _plans_page(request: Request, **form_state: Any) -> dict[str, Any]:
    plans = list(request.db.scalars(sa.select(Plan).order_by(Plan.active.desc(), Plan.id)))
    values = form_state.pop("values", None) or {
        "public": True,
        "active": True,
        "period_months": "1",
        "currency": "USD",
        "models": [],
    }
    return base(
        request,
        "plans",
        plans=plans,
        running=running_cycles(request.db),
        default_code=request.find_service(IPlans).default_code,
        fields=(CODE_FIELD, *PLAN_FIELDS),
        models=known_models(request, *(p.models for p in plans), values.get("models") or []),
        values=values,
        **{"error": None, "error_field": None, **form_state},
    )


@admin_page("admin.plans", "plans.html")
def plans(request: Request) -> dict[str, Any]:
    return _plans_page(request)


@admin_action("admin.plans")
def plan_add(request: Request) -> Response:
    code = form(request, "code").strip()
    fields = offer_fields(request, PLAN_FIELDS)
    try:
        plan = plan_service.add_plan(request.db, code, fields, actor=actor(request))
    except APIError as exc:
        context = _plans_page(
            request, values={"code": code, **fields}, error_field=field_at_fault(exc, "code")
        )
        return refused(request, "plans.html", exc, context)
    request.session.flash(
        f"Added plan {plan.code}: {plan.price_text} {plan.currency}, {plan.units} units "
        f"every {plan.period_months} month{'s' if plan.period_months != 1 else ''}.",
        "success",
    )
    return HTTPSeeOther(request.route_path("admin.plan", code=plan.code))


def _find(request: Request) -> Plan:
    code = request.matchdict["code"]
    plan = request.db.scalar(sa.select(Plan).where(Plan.code == code[:40]))
    if plan is None:
        raise NotFound("Not found.")
    return plan


def _plan_page(request: Request, plan: Plan, **form_state: Any) -> dict[str, Any]:
    values = form_state.pop("values", None) or plan_service.plan_view(plan)
    return base(
        request,
        "plans",
        plan=plan,
        running=running_cycles(request.db).get(plan.id, 0),
        is_default=plan.code == request.find_service(IPlans).default_code,
        fields=PLAN_FIELDS,
        models=known_models(request, plan.models, values.get("models") or []),
        values=values,
        **{"error": None, "error_field": None, **form_state},
    )


@admin_page("admin.plan", "plan.html")
def plan(request: Request) -> dict[str, Any]:
    return _plan_page(request, _find(request))


@admin_action("admin.plan.edit")
def plan_edit(request: Request) -> Response:
    found = _find(request)
    changes = offer_fields(request, PLAN_FIELDS)
    before = plan_service.plan_view(found)
    try:
        edited = plan_service.edit_plan(request.db, found.code, changes, actor=actor(request))
    except APIError as exc:
        # The session's copy may hold refused values (never flushed): read the row afresh.
        request.db.expire(found)
        context = _plan_page(
            request, found, values={"code": found.code, **changes}, error_field=field_at_fault(exc)
        )
        return refused(request, "plan.html", exc, context)
    after = plan_service.plan_view(edited)
    changed = [k for k in after if after[k] != before[k]]
    message = (
        f"Plan {edited.code} saved: {', '.join(changed)} changed."
        if changed
        else f"Plan {edited.code}: nothing changed."
    )
    request.session.flash(message, "success")
    return HTTPSeeOther(request.route_path("admin.plan", code=edited.code))
