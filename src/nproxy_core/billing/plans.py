"""Plans as rows (DESIGN 4.12): finding the default plan and the ones for sale, what a cycle
of a plan buys, and adding or editing a plan (audited, shared by every surface).

The plan named by ``nproxy.plan.default`` (default ``monthly``) is the one used wherever no
plan is named: checkout without a plan, ``GET /api/v1/plan``, an admin's free cycle.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from limits import parse
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.audit import Actor
from nproxy_core.billing.interfaces import IPlans
from nproxy_core.billing.models import Plan
from nproxy_core.billing.models import decimal_text as price_text
from nproxy_core.db import utcnow
from nproxy_core.errors import Conflict, NotFound, ValidationError
from nproxy_core.i18n import _
from nproxy_core.i18n.fields import BadTranslation, clean_translations

__all__ = [
    "PlanCatalog",
    "add_plan",
    "add_row",
    "buyable",
    "by_code",
    "edit_plan",
    "edit_row",
    "images_per_model",
    "offer_json",
    "plan_json",
    "plan_view",
    "price_text",
    "row_view",
    "sold_by",
    "to_buy",
]

CODE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
CURRENCY = re.compile(r"^[A-Z0-9]{2,10}$")
#: What ``nproxy plans add`` / ``edit`` (and later the web admin) may set.
FIELDS = (
    "name",
    "price",
    "currency",
    "price_stars",
    "period_months",
    "units",
    "models",
    "max_batch",
    "api_rate_limit",
    "public",
    "free",
    "recurring_allowed",
    "active",
    "translations",
)
#: What an admin may translate of a plan or a pack, and how long each text may be (the
#: English column's size).
TRANSLATABLE = {"name": 100}


@implementer(IPlans)
class PlanCatalog:
    """Billing's plans service: the default plan's code comes from the settings."""

    def __init__(self, default_code: str) -> None:
        self.default_code = default_code

    def default(self, db: Session) -> Plan:
        plan = db.scalar(sa.select(Plan).where(Plan.code == self.default_code))
        if plan is None:
            raise NotFound(
                f"the default plan {self.default_code!r} (nproxy.plan.default) does not exist: "
                "add it with `nproxy plans add`"
            )
        return plan

    def get(self, db: Session, code: str) -> Plan:
        return by_code(db, Plan, code)

    def for_sale(self, db: Session) -> list[Plan]:
        """The public, active plans, cheapest first: the pricing page and ``/api/v1/plans``."""
        return list(
            db.scalars(
                sa.select(Plan)
                .where(Plan.public.is_(True), Plan.active.is_(True))
                .order_by(Plan.free.desc(), Plan.price, Plan.id)
            )
        )

    def to_buy(self, db: Session, code: Any, processor: Any) -> Plan:
        """The plan a checkout asks for (the default one when ``code`` is None), or
        ValidationError naming it and why it cannot be bought with ``processor``."""
        plan = self.default(db) if code is None else to_buy(db, Plan, code, processor)
        return buyable(plan, processor)


# --- shared by the catalogs of plans and of credit packs (billing.packs) ---------------------


def kind(model: Any) -> str:
    """``plan`` or ``pack``: how messages, audit rows and commands name a row of ``model``."""
    return "plan" if model is Plan else "pack"


def by_code(db: Session, model: Any, code: Any, *, lock: bool = False) -> Any:
    """The row of ``model`` (Plan or CreditPack) with ``code``; NotFound when there is none."""
    query = sa.select(model).where(model.code == str(code).strip().lower())
    row = db.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"no {kind(model)} {code!r}")
    return row


def to_buy(db: Session, model: Any, code: Any, processor: Any) -> Any:
    """The row of ``model`` a checkout names, or ValidationError naming it and why it cannot
    be bought with ``processor`` (the field of the error is ``plan`` or ``pack``)."""
    what = kind(model)
    if not isinstance(code, str) or not code.strip():
        raise ValidationError(
            _("Name a plan.") if what == "plan" else _("Name a pack."), fields={what: "invalid"}
        )
    row = db.scalar(sa.select(model).where(model.code == code.strip().lower()))
    if row is None:
        mapping = {"code": code.strip()[:40]}
        raise ValidationError(
            _("There is no plan '${code}'.", mapping=mapping)
            if what == "plan"
            else _("There is no pack '${code}'.", mapping=mapping),
            fields={what: "unknown"},
        )
    return buyable(row, processor)


def buyable(row: Any, processor: Any) -> Any:
    """``row`` (a plan or a pack) if ``processor`` can sell it, else ValidationError."""
    problem = sold_by(row, processor)
    if problem:
        what = kind(type(row))
        mapping = {"code": row.code, "processor": getattr(processor, "name", "")}
        # Whole sentences, so that each language can say them its own way.
        said = {
            ("plan", "is no longer sold"): _("The plan '${code}' is no longer sold."),
            ("pack", "is no longer sold"): _("The pack '${code}' is no longer sold."),
            ("plan", "is free: nothing to pay"): _("The plan '${code}' is free: nothing to pay."),
        }.get((what, problem))
        if said is None and what == "plan":
            said = _("The plan '${code}' has no price in Stars, so '${processor}' cannot sell it.")
        elif said is None:
            said = _("The pack '${code}' has no price in Stars, so '${processor}' cannot sell it.")
        message = _(said, mapping=mapping)
        raise ValidationError(message, fields={what: "unavailable"})
    return row


def sold_by(plan: Any, processor: Any) -> str | None:
    """Why ``processor`` cannot sell ``plan`` or a credit pack (in words after "The plan X"),
    or None.

    A processor that charges in Telegram Stars (``charges_stars = True``) sells only plans and
    packs with a Stars price; the others sell any priced one.
    """
    if not plan.active:
        return "is no longer sold"
    if getattr(plan, "free", False):
        return "is free: nothing to pay"
    if getattr(processor, "charges_stars", False) and plan.price_stars is None:
        return f"has no price in Stars, so {processor.name!r} cannot sell it"
    return None


def images_per_model(offer: Any, per_image: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """About how many images ``offer`` (a plan or a pack) makes with each model it allows:
    its units over the units of one image at the model's default preset (``per_image``, from
    ``IUnitPrices.per_image``)."""
    return [
        {
            "model": price["model"],
            "label": price["label"],
            "units_per_image": price["units"],
            "images": offer.units // price["units"],
        }
        for price in per_image
        if not offer.models or price["model"] in offer.models
    ]


def plan_json(plan: Plan, per_image: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A plan as ``GET /api/v1/plans`` shows it: what it costs and buys, never anyone's use."""
    return offer_json(
        plan,
        per_image,
        period_months=plan.period_months,
        free=plan.free,
        recurring_allowed=plan.recurring_allowed,
    )


def offer_json(row: Any, per_image: Sequence[Mapping[str, Any]], **terms: Any) -> dict[str, Any]:
    """A plan or a credit pack for sale, as the API lists it: its code, name and prices, its
    own ``terms``, and about how many images it makes with each model."""
    return {
        "code": row.code,
        "name": row.name,
        "price": {"amount": price_text(row.price), "currency": row.currency},
        "price_stars": row.price_stars,
        **terms,
        "images_per_model": images_per_model(row, per_image),
    }


def plan_view(plan: Plan) -> dict[str, Any]:
    """Every field of a plan: the audit rows and ``nproxy plans list --json``."""
    return row_view(plan, FIELDS)


def row_view(row: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The code and ``fields`` of a plan or a credit pack as plain JSON values (the price as
    text, the models as a list)."""
    view: dict[str, Any] = {"code": row.code}
    for field in fields:
        value = getattr(row, field)
        if field == "price":
            value = price_text(value)
        elif field == "models":
            value = list(value or [])
        elif field == "translations":
            value = {language: dict(texts) for language, texts in (value or {}).items()}
        view[field] = value
    return view


# --- validation ------------------------------------------------------------------------------


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError(message, fields={field: "invalid"})


def _positive(field: str, value: Any, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _bad(field, f"{field} must be a whole number, not {value!r}") from None
    if isinstance(value, bool) or number <= 0 or str(number) != str(value).strip():
        raise _bad(field, f"{field} must be a whole number above 0, not {value!r}")
    return number


def _clean(field: str, value: Any) -> Any:
    if field == "name":
        name = str(value or "").strip()
        if not name or len(name) > 100:
            raise _bad("name", "name must be 1 to 100 characters")
        return name
    if field == "price":
        try:
            price = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            raise _bad("price", f"price must be a number, not {value!r}") from None
        # Numeric(18, 8): refuse what it would round or overflow.
        if not price.is_finite() or price < 0 or price.as_tuple().exponent < -8:
            raise _bad("price", f"price must be 0 or more with at most 8 decimals, not {value!r}")
        if price >= Decimal(10) ** 10:
            raise _bad("price", f"price {value!r} is too large")
        return price
    if field == "currency":
        currency = str(value or "").strip().upper()
        if not CURRENCY.match(currency):
            raise _bad("currency", f"currency must be 2 to 10 letters or digits, not {value!r}")
        return currency
    if field in ("price_stars", "max_batch"):
        return _positive(field, value, optional=True)
    if field in ("period_months", "units", "valid_months"):
        return _positive(field, value)
    if field == "models":
        models = [str(m).strip() for m in (value or []) if str(m).strip()]
        if any(len(m) > 100 for m in models):
            raise _bad("models", "a model id is at most 100 characters")
        return list(dict.fromkeys(models))
    if field == "api_rate_limit":
        if value is None or not str(value).strip():
            return None
        text = str(value).strip()
        try:
            parse(text)
        except ValueError:
            raise _bad(
                "api_rate_limit", f"api_rate_limit must read like 60/minute, not {text!r}"
            ) from None
        if len(text) > 64:
            raise _bad("api_rate_limit", "api_rate_limit is at most 64 characters")
        return text
    if field == "translations":
        try:
            return clean_translations(value, TRANSLATABLE)
        except BadTranslation as exc:
            raise ValidationError(exc.message, fields={exc.field: exc.reason}) from None
    if field in ("public", "free", "recurring_allowed", "active"):
        if not isinstance(value, bool):
            raise _bad(field, f"{field} must be true or false")
        return value
    raise _bad(field, f"no field {field!r}")


def _check_whole(plan: Plan) -> None:
    """Rules across fields: a plan is free exactly when its price is 0."""
    if plan.free and plan.price != 0:
        raise _bad("price", "a free plan's price must be 0")
    if not plan.free and plan.price == 0:
        raise _bad("price", "a plan that is not free needs a price above 0 (or mark it free)")


def add_plan(db: Session, code: Any, fields: Mapping[str, Any], *, actor: Actor) -> Plan:
    """Create a plan; ``fields`` holds :data:`FIELDS` (name, price, currency, units and
    period_months required). One audit row, ``plan.add``."""
    return add_row(
        db,
        Plan,
        code,
        fields,
        allowed=FIELDS,
        required=("name", "price", "currency", "units", "period_months"),
        check=_check_whole,
        view=plan_view,
        actor=actor,
    )


def edit_plan(db: Session, code: str, changes: Mapping[str, Any], *, actor: Actor) -> Plan:
    """Change some fields of a plan; what was bought before keeps its terms. One audit row,
    ``plan.edit``, with the fields before and after (none when nothing changed)."""
    return edit_row(
        db, Plan, code, changes, allowed=FIELDS, check=_check_whole, view=plan_view, actor=actor
    )


def clean_fields(model: Any, values: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """``values`` checked and normalised, field by field; a field not in ``allowed`` (or a bad
    value) is a ValidationError naming it."""
    allowed = tuple(allowed)
    for field in values:
        if field not in allowed:
            raise _bad(field, f"no {kind(model)} field {field!r}")
    return {field: _clean(field, value) for field, value in values.items()}


def add_row(
    db: Session,
    model: Any,
    code: Any,
    fields: Mapping[str, Any],
    *,
    allowed: Iterable[str],
    required: Iterable[str],
    check: Callable[[Any], None],
    view: Callable[[Any], dict[str, Any]],
    actor: Actor,
) -> Any:
    """Create a plan or a credit pack (``model``) from ``fields``, checked by ``check`` as a
    whole; one audit row, ``<plan|pack>.add``, with ``view`` of the new row."""
    what = kind(model)
    code = str(code or "").strip().lower()
    if not CODE.match(code):
        raise _bad(
            "code",
            f"code must be a slug of 1 to 40 lower-case letters, digits and dashes, not {code!r}",
        )
    missing = [f for f in required if f not in fields]
    if missing:
        raise ValidationError(
            f"a new {what} needs {', '.join(missing)}", fields=dict.fromkeys(missing, "required")
        )
    if db.scalar(sa.select(model.id).where(model.code == code)) is not None:
        raise Conflict(f"a {what} {code!r} exists already: use `nproxy {what}s edit {code}`")
    row = model(code=code, **{"models": [], **clean_fields(model, fields, allowed)})
    check(row)
    db.add(row)
    db.flush()
    actor.record(db, f"{what}.add", what, row.id, None, view(row))
    return row


def edit_row(
    db: Session,
    model: Any,
    code: Any,
    changes: Mapping[str, Any],
    *,
    allowed: Iterable[str],
    check: Callable[[Any], None],
    view: Callable[[Any], dict[str, Any]],
    actor: Actor,
) -> Any:
    """Change some fields of a plan or a credit pack; one audit row, ``<plan|pack>.edit``,
    with the fields before and after (none when nothing changed)."""
    what = kind(model)
    row = by_code(db, model, code, lock=True)
    before = view(row)
    for field, value in clean_fields(model, changes, allowed).items():
        setattr(row, field, value)
    check(row)
    after = view(row)
    if after != before:
        row.updated_at = utcnow()
        db.flush()
        changed = [k for k in after if after[k] != before[k]]
        actor.record(
            db,
            f"{what}.edit",
            what,
            row.id,
            {k: before[k] for k in changed},
            {"code": row.code, **{k: after[k] for k in changed}},
        )
    return row


def codes(plans: Iterable[Plan]) -> list[str]:
    return [plan.code for plan in plans]


def default_plan_json(plan: Plan) -> dict[str, Any]:
    """What ``GET /api/v1/plan`` answers (kept from before plans were rows): no units."""
    return {
        "name": plan.name,
        "price": {"amount": price_text(plan.price), "currency": plan.currency},
        "period_months": plan.period_months,
    }


def reconcile_default_plan(registry: Any, terms: Any) -> None:
    """At start-up: the default plan's row takes the ``nproxy.plan.*`` terms while it has never
    been edited (``updated_at == created_at``: ``nproxy plans edit`` moves ``updated_at``, this
    does not). A database not migrated yet, or without that plan, is left alone."""
    from nproxy_core.db import IDatabase
    from nproxy_core.wiring import find_service

    engine = find_service(registry, IDatabase).engine
    values = {
        "name": terms.name,
        "price": terms.price,
        "currency": terms.currency,
        "units": terms.request_limit,
        "period_months": terms.period_months,
    }
    try:
        with engine.begin() as conn:
            if not sa.inspect(conn).has_table("plans"):
                return
            table = Plan.__table__
            row = (
                conn.execute(sa.select(table).where(table.c.code == terms.code)).mappings().first()
            )
            if row is None or row["updated_at"] != row["created_at"] or row["free"]:
                return
            if all(row[k] == v for k, v in values.items()):
                return
            conn.execute(sa.update(table).where(table.c.id == row["id"]).values(values))
    except sa.exc.DBAPIError:
        # No database to reach yet (a command that needs none): nothing to reconcile.
        return
