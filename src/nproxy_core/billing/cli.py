"""``nproxy users grant-cycle`` and ``users list``: the accounts' cycles from the server console;
``nproxy plans`` and ``nproxy packs``: the plans and credit packs sold.

Here rather than in ``accounts/cli.py``: accounts sit below billing and cannot read cycles.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
import sqlalchemy as sa

from nproxy_core.accounts import actions
from nproxy_core.accounts.cli import CONSOLE, users
from nproxy_core.accounts.models import User
from nproxy_core.billing import packs as pack_service
from nproxy_core.billing import plans as plan_service
from nproxy_core.billing.grants import grant_cycle, grant_units
from nproxy_core.billing.interfaces import IPlans
from nproxy_core.billing.models import BillingCycle, CreditPack, Plan
from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli
from nproxy_core.db import utcnow
from nproxy_core.errors import ValidationError
from nproxy_core.i18n.fields import ENGLISH_NAMES, TRANSLATED


@users.command("grant-cycle")
@click.argument("email")
@click.option("--reason", required=True, help="Why the cycle is free; kept with it and audited.")
@click.option(
    "--plan", "plan_code", metavar="CODE", help="The plan (default: nproxy.plan.default)."
)
@pass_cli
def users_grant_cycle(cli: CLIContext, email: str, reason: str, plan_code: str | None) -> None:
    """Give an account one cycle of a plan, free of charge."""
    with cli.transaction() as session:
        user = actions.user_by_email(session, email)
        plans = cli.find_service(IPlans)
        plan = plans.default(session) if plan_code is None else plans.get(session, plan_code)
        cycle = grant_cycle(session, plan, user.id, reason=reason, actor=CONSOLE)
        click.echo(
            f"granted {user.email} a cycle from {cycle.starts_at:%Y-%m-%d %H:%M} to "
            f"{cycle.ends_at:%Y-%m-%d %H:%M} UTC ({cycle.request_limit} units)"
        )


@users.command("list")
@click.option(
    "--plan", "plan_name", metavar="CODE", help="Only accounts with a current cycle of CODE."
)
@click.option("--active", is_flag=True, help="Only accounts with a current cycle.")
@click.option("--blocked", is_flag=True, help="Only blocked accounts.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--after", type=int, metavar="ID", help="The next page: accounts older than ID.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def users_list(
    cli: CLIContext,
    plan_name: str | None,
    active: bool,
    blocked: bool,
    limit: int,
    after: int | None,
    as_json: bool,
) -> None:
    """List accounts, newest first: email, role, blocked, created, end of the current cycle."""
    now = utcnow()
    current = sa.and_(
        BillingCycle.user_id == User.id,
        BillingCycle.starts_at <= now,
        BillingCycle.ends_at > now,
    )
    cycle_ends = sa.select(sa.func.max(BillingCycle.ends_at)).where(current).scalar_subquery()
    # The plan of the current cycle that ends last (the one the quota draws on after the rest).
    cycle_plan = (
        sa.select(Plan.name)
        .join(BillingCycle, BillingCycle.plan_id == Plan.id)
        .where(current)
        .order_by(BillingCycle.ends_at.desc(), BillingCycle.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = sa.select(User, cycle_ends.label("cycle_ends"), cycle_plan.label("plan")).order_by(
        User.id.desc()
    )
    if plan_name is not None or active:
        query = query.where(cycle_ends.is_not(None))
    if blocked:
        query = query.where(User.is_blocked.is_(True))
    if after is not None:
        query = query.where(User.id < after)
    with cli.transaction() as db:
        if plan_name is not None:
            wanted = plan_name.strip().lower()
            plan_id = db.scalar(
                sa.select(Plan.id).where(
                    sa.or_(Plan.code == wanted, sa.func.lower(Plan.name) == wanted)
                )
            )
            if plan_id is None:
                raise ValidationError(f"no plan {plan_name!r} (see `nproxy plans list`)")
            query = query.where(sa.exists().where(current, BillingCycle.plan_id == plan_id))
        rows = db.execute(query.limit(limit + 1)).all()
        more = len(rows) > limit
        views = [_user_view(user, ends, plan) for user, ends, plan in rows[:limit]]
    if as_json:
        click.echo(json.dumps(views, indent=2))
        return
    if not views:
        click.echo("no users")
        return
    click.echo(f"{'id':>6}  {'email':<32} {'role':<6} {'blocked':<7} {'created':<16}  cycle ends")
    for v in views:
        click.echo(
            f"{v['id']:>6}  {v['email']:<32} {v['role']:<6} {'yes' if v['blocked'] else 'no':<7} "
            f"{v['created_at'][:16].replace('T', ' '):<16}  "
            f"{(v['cycle_ends_at'] or '-')[:16].replace('T', ' ')}"
        )
    if more:
        click.echo(f"more: nproxy users list --after {views[-1]['id']}")


def _user_view(user: User, cycle_ends: dt.datetime | None, plan: str | None) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "role": str(user.role),
        "blocked": user.is_blocked,
        "created_at": user.created_at.isoformat(),
        "plan": plan if cycle_ends else None,
        "cycle_ends_at": cycle_ends.isoformat() if cycle_ends else None,
    }


# --- nproxy plans ----------------------------------------------------------------------------


@main.group()
def plans() -> None:
    """The plans sold and granted (audited, surface cli)."""


def _options(*, adding: bool, plan: bool) -> Any:
    """The options of ``plans add``/``edit`` (``plan``) or ``packs add``/``edit``: None where
    not given."""

    def wrap(fn: Any) -> Any:
        options = [
            click.option("--name", required=adding, help="Shown to buyers."),
            click.option(
                "--price", required=adding, help="0 only for a --free plan." if plan else "Above 0."
            ),
            click.option("--currency", required=adding, help="USD, EUR, …"),
            click.option(
                "--units",
                type=int,
                required=adding,
                help="Units per cycle." if plan else "Units the pack holds.",
            ),
            click.option("--public/--hidden", "public", default=None, help="Listed for sale."),
            click.option("--models", multiple=True, metavar="MODEL", help="Allowed (repeat)."),
            click.option("--stars", "price_stars", type=int, help="Price in Telegram Stars."),
            *(
                click.option(
                    f"--name-{language}",
                    f"name_{language}",
                    metavar="TEXT",
                    help=f"The name in {ENGLISH_NAMES[language]}; '' for none (the English).",
                )
                for language in TRANSLATED
            ),
        ]
        if plan:
            options += [
                click.option("--period-months", type=int, required=adding),
                click.option("--max-batch", type=int),
                click.option("--api-rate-limit", metavar="N/PERIOD", help="e.g. 60/minute."),
                click.option("--free/--paid", "free", default=None),
                click.option("--recurring/--no-recurring", "recurring_allowed", default=None),
            ]
        else:
            options.append(
                click.option("--valid-months", type=int, help="How long its units last (12).")
            )
        if not adding:
            options.append(click.option("--active/--inactive", "active", default=None))
        for option in reversed(options):
            fn = option(fn)
        return fn

    return wrap


def _names(values: dict[str, Any]) -> dict[str, str]:
    """``--name-ru`` / ``--name-uz`` as given: language → the name ("" to remove it)."""
    return {
        language: values[f"name_{language}"]
        for language in TRANSLATED
        if values.get(f"name_{language}") is not None
    }


def _with_names(current: dict[str, Any] | None, names: dict[str, str]) -> dict[str, Any]:
    """A row's translations with the names given replaced (the rest kept as they are)."""
    merged = {language: dict(texts) for language, texts in (current or {}).items()}
    for language, name in names.items():
        merged.setdefault(language, {})["name"] = name
    return merged


def _given(values: dict[str, Any], fields: tuple[str, ...] = plan_service.FIELDS) -> dict[str, Any]:
    given = {k: v for k, v in values.items() if v is not None and k in fields}
    names = _names(values)
    if names:
        given["translations"] = _with_names(None, names)
    if values.get("models") == ():
        given.pop("models", None)
    else:
        given["models"] = list(values["models"])
    return given


def _print_rows(
    views: list[dict[str, Any]], as_json: bool, months: str, marks: tuple[str, ...]
) -> None:
    """The rows of ``plans list`` or ``packs list``: JSON, or a table whose flags are the
    visibility, the state and the ``marks`` that are true."""
    if as_json:
        click.echo(json.dumps(views, indent=2))
        return
    click.echo(f"{'code':<16} {'name':<20} {'price':>14} {'units':>7} {'months':>6}  flags")
    for v in views:
        flags = [
            "public" if v["public"] else "hidden",
            "" if v["active"] else "inactive",
            *(mark.removesuffix("_allowed") for mark in marks if v[mark]),
        ]
        click.echo(
            f"{v['code']:<16} {v['name'][:20]:<20} {v['price'] + ' ' + v['currency']:>14} "
            f"{v['units']:>7} {v[months]:>6}  {' '.join(f for f in flags if f)}"
        )


def _edit(
    cli: CLIContext, code: str, fields: dict[str, Any], edit: Any, values: dict[str, Any]
) -> None:
    """``plans edit`` or ``packs edit``: ``edit`` (audited) with the options given."""
    if not fields:
        raise click.UsageError("nothing to change: give at least one option")
    with cli.transaction() as db:
        if "translations" in fields:
            # Only the names given change: the row's other translations stay.
            model = Plan if edit is plan_service.edit_plan else CreditPack
            current = plan_service.by_code(db, model, code).translations
            fields = {**fields, "translations": _with_names(current, _names(values))}
        row = edit(db, code, fields, actor=CONSOLE)
        what = "plan" if isinstance(row, Plan) else "pack"
        click.echo(f"{what} {row.code}: {row.price_text} {row.currency}, {row.units} units")


@plans.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def plans_list(cli: CLIContext, as_json: bool) -> None:
    """Every plan, sold or not; the default one is marked."""
    default = cli.find_service(IPlans).default_code
    with cli.transaction() as db:
        rows = db.scalars(sa.select(Plan).order_by(Plan.id)).all()
        views = [{**plan_service.plan_view(p), "default": p.code == default} for p in rows]
    _print_rows(views, as_json, "period_months", ("default", "free", "recurring_allowed"))


@plans.command("add")
@click.argument("code")
@_options(adding=True, plan=True)
@pass_cli
def plans_add(cli: CLIContext, code: str, **values: Any) -> None:
    """Add a plan: public and active unless told otherwise."""
    fields = _given(values)
    fields.setdefault("public", True)
    with cli.transaction() as db:
        plan = plan_service.add_plan(db, code, fields, actor=CONSOLE)
        click.echo(f"added plan {plan.code}: {plan.price_text} {plan.currency}, {plan.units} units")


@plans.command("edit")
@click.argument("code")
@_options(adding=False, plan=True)
@pass_cli
def plans_edit(cli: CLIContext, code: str, **values: Any) -> None:
    """Change a plan; what was bought before keeps the terms it was bought with."""
    _edit(cli, code, _given(values), plan_service.edit_plan, values)


# --- nproxy packs ----------------------------------------------------------------------------


@main.group()
def packs() -> None:
    """The credit packs sold, and units granted (audited, surface cli)."""


@packs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def packs_list(cli: CLIContext, as_json: bool) -> None:
    """Every credit pack, sold or not."""
    with cli.transaction() as db:
        rows = db.scalars(sa.select(CreditPack).order_by(CreditPack.id)).all()
        views = [pack_service.pack_view(p) for p in rows]
    if not views and not as_json:
        click.echo("no packs: add one with `nproxy packs add`")
        return
    _print_rows(views, as_json, "valid_months", ())


@packs.command("add")
@click.argument("code")
@_options(adding=True, plan=False)
@pass_cli
def packs_add(cli: CLIContext, code: str, **values: Any) -> None:
    """Add a credit pack: public, active and valid 12 months unless told otherwise."""
    fields = _given(values, pack_service.FIELDS)
    with cli.transaction() as db:
        pack = pack_service.add_pack(db, code, fields, actor=CONSOLE)
        click.echo(
            f"added pack {pack.code}: {pack.price_text} {pack.currency}, {pack.units} units "
            f"for {pack.valid_months} months"
        )


@packs.command("edit")
@click.argument("code")
@_options(adding=False, plan=False)
@pass_cli
def packs_edit(cli: CLIContext, code: str, **values: Any) -> None:
    """Change a credit pack; packs bought before keep their units and expiry."""
    _edit(cli, code, _given(values, pack_service.FIELDS), pack_service.edit_pack, values)


@packs.command("grant")
@click.argument("email")
@click.option("--units", required=True, help="How many units to give.")
@click.option("--months", required=True, help="How many calendar months they last.")
@click.option("--reason", required=True, help="Why they are free; audited.")
@pass_cli
def packs_grant(cli: CLIContext, email: str, units: str, months: str, reason: str) -> None:
    """Give an account units of its own (a pack balance), free of charge."""
    with cli.transaction() as db:
        user = actions.user_by_email(db, email)
        balance = grant_units(db, user.id, units=units, months=months, reason=reason, actor=CONSOLE)
        click.echo(
            f"granted {user.email} {balance.units} units until "
            f"{balance.expires_at:%Y-%m-%d %H:%M} UTC"
        )
