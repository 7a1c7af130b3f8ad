"""Credit packs (DESIGN 4.12): every pack with its exact terms and how many balances bought
from it are usable now; add one, edit one. The forms call ``billing.packs.add_pack`` /
``edit_pack`` (validated, audited ``pack.add`` / ``pack.edit`` with surface ``web``), the same as
``nproxy packs add/edit``. A refused form comes back as typed, the message by its field."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy.orm import Session

from nproxy_core.admin.page import actor, admin_action, admin_page, base, form
from nproxy_core.admin.views.plans import (
    CODE_FIELD,
    NAME_TRANSLATIONS,
    field_at_fault,
    known_models,
    offer_fields,
    refused,
)
from nproxy_core.billing import packs as pack_service
from nproxy_core.billing.models import CreditPack, PackBalance
from nproxy_core.db import utcnow
from nproxy_core.errors import APIError, NotFound
from nproxy_core.quota.services import pack_usable

#: The fields of the pack form, as :data:`..plans.PLAN_FIELDS`.
PACK_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("name", "Name", "text", "shown to buyers"),
    *NAME_TRANSLATIONS,
    ("price", "Price", "text", "above 0"),
    ("currency", "Currency", "text", "USD, EUR, …"),
    ("price_stars", "Price in Stars", "optional", "empty: not sold for Telegram Stars"),
    ("units", "Units", "number", ""),
    ("valid_months", "Valid (months)", "number", "from the purchase"),
    ("models", "Models", "models", "none ticked: every model"),
    ("public", "Public (on the pricing page)", "flag", ""),
    ("active", "Active (sellable)", "flag", ""),
)


def usable_balances(db: Session) -> dict[int, tuple[int, int]]:
    """Pack id → (balances bought from it that can be drawn on now, their units left)."""
    now = utcnow()
    left = PackBalance.units - PackBalance.used - PackBalance.reserved
    rows = db.execute(
        sa.select(PackBalance.pack_id, sa.func.count(), sa.func.coalesce(sa.func.sum(left), 0))
        .where(PackBalance.pack_id.is_not(None), pack_usable(now))
        .group_by(PackBalance.pack_id)
    )
    return {pack_id: (count, int(units)) for pack_id, count, units in rows}


def _packs_page(request: Request, **form_state: Any) -> dict[str, Any]:
    packs = list(
        request.db.scalars(sa.select(CreditPack).order_by(CreditPack.active.desc(), CreditPack.id))
    )
    values = form_state.pop("values", None) or {
        "public": True,
        "active": True,
        "valid_months": "12",
        "currency": "USD",
        "models": [],
    }
    return base(
        request,
        "packs",
        packs=packs,
        balances=usable_balances(request.db),
        fields=(CODE_FIELD, *PACK_FIELDS),
        models=known_models(request, *(p.models for p in packs), values.get("models") or []),
        values=values,
        **{"error": None, "error_field": None, **form_state},
    )


@admin_page("admin.packs", "packs.html")
def packs(request: Request) -> dict[str, Any]:
    return _packs_page(request)


@admin_action("admin.packs")
def pack_add(request: Request) -> Response:
    code = form(request, "code").strip()
    fields = offer_fields(request, PACK_FIELDS)
    try:
        pack = pack_service.add_pack(request.db, code, fields, actor=actor(request))
    except APIError as exc:
        context = _packs_page(
            request, values={"code": code, **fields}, error_field=field_at_fault(exc, "code")
        )
        return refused(request, "packs.html", exc, context)
    request.session.flash(
        f"Added pack {pack.code}: {pack.price_text} {pack.currency}, {pack.units} units valid "
        f"{pack.valid_months} month{'s' if pack.valid_months != 1 else ''}.",
        "success",
    )
    return HTTPSeeOther(request.route_path("admin.pack", code=pack.code))


def _find(request: Request) -> CreditPack:
    code = request.matchdict["code"]
    pack = request.db.scalar(sa.select(CreditPack).where(CreditPack.code == code[:40]))
    if pack is None:
        raise NotFound("Not found.")
    return pack


def _pack_page(request: Request, pack: CreditPack, **form_state: Any) -> dict[str, Any]:
    values = form_state.pop("values", None) or pack_service.pack_view(pack)
    return base(
        request,
        "packs",
        pack=pack,
        balances=usable_balances(request.db).get(pack.id, (0, 0)),
        fields=PACK_FIELDS,
        models=known_models(request, pack.models, values.get("models") or []),
        values=values,
        **{"error": None, "error_field": None, **form_state},
    )


@admin_page("admin.pack", "pack.html")
def pack(request: Request) -> dict[str, Any]:
    return _pack_page(request, _find(request))


@admin_action("admin.pack.edit")
def pack_edit(request: Request) -> Response:
    found = _find(request)
    changes = offer_fields(request, PACK_FIELDS)
    before = pack_service.pack_view(found)
    try:
        edited = pack_service.edit_pack(request.db, found.code, changes, actor=actor(request))
    except APIError as exc:
        # The session's copy may hold refused values (never flushed): read the row afresh.
        request.db.expire(found)
        context = _pack_page(
            request, found, values={"code": found.code, **changes}, error_field=field_at_fault(exc)
        )
        return refused(request, "pack.html", exc, context)
    after = pack_service.pack_view(edited)
    changed = [k for k in after if after[k] != before[k]]
    message = (
        f"Pack {edited.code} saved: {', '.join(changed)} changed."
        if changed
        else f"Pack {edited.code}: nothing changed."
    )
    request.session.flash(message, "success")
    return HTTPSeeOther(request.route_path("admin.pack", code=edited.code))
