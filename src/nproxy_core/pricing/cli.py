"""``nproxy pricing``: what one image costs in units, and the admins' overrides (DESIGN 4.12),
from the server console. Setting and clearing go through ``IUnitPrices`` as in
``/admin/pricing``: audited, with the console as actor (surface ``cli``).

Only click is imported at module level: ``nproxy pricing --help`` loads nothing else.
"""

from __future__ import annotations

import json
from typing import Any

import click

from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli


@main.group()
def pricing() -> None:
    """Units per model and resolution: list, override, clear (audited)."""


def _prices(cli: CLIContext) -> Any:
    from nproxy_core.pricing import IUnitPrices

    return cli.find_service(IUnitPrices)


@pricing.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def pricing_list(cli: CLIContext, as_json: bool) -> None:
    """Every enabled (provider, model, resolution) with its USD estimate, default units, the
    override if any, and the units one image costs now."""
    prices = _prices(cli)
    with cli.transaction() as db:
        table = [price.as_dict() for price in prices.table(db)]
    if as_json:
        click.echo(json.dumps(table, indent=2))
        return
    usd_per_unit = prices.usd_per_unit
    columns = ("provider", "model", "resolution", "usd", "default", "override", "units")
    rows = [
        (
            p["provider"],
            p["model"],
            p["resolution"],
            "?" if p["usd"] is None else p["usd"],
            str(p["default_units"]),
            "-" if p["override"] is None else str(p["override"]),
            str(p["units"]),
        )
        for p in table
    ]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    numeric = {"usd", "default", "override", "units"}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(w) if name in numeric else cell.ljust(w)
            for name, cell, w in zip(columns, cells, widths, strict=True)
        ).rstrip()

    click.echo(line(columns))
    for row in rows:
        click.echo(line(row))
    click.echo(f"one unit = {usd_per_unit} USD (nproxy.units.usd_per_unit)")


@pricing.command("set")
@click.argument("provider")
@click.argument("model")
@click.argument("resolution")
@click.argument("units")
@pass_cli
def pricing_set(cli: CLIContext, provider: str, model: str, resolution: str, units: str) -> None:
    """Make one image of PROVIDER's MODEL at RESOLUTION cost UNITS (1 to 1000)."""
    from nproxy_core.accounts.cli import CONSOLE

    prices = _prices(cli)
    with cli.transaction() as db:
        price = prices.set_override(db, provider, model, resolution, units, CONSOLE)
    click.echo(
        f"{price.provider} {price.model} {price.resolution}: {price.units} units "
        f"(default {price.default_units})"
    )


@pricing.command("clear")
@click.argument("provider")
@click.argument("model")
@click.argument("resolution")
@pass_cli
def pricing_clear(cli: CLIContext, provider: str, model: str, resolution: str) -> None:
    """Drop the override: the default price (from the USD estimate) applies again."""
    from nproxy_core.accounts.cli import CONSOLE

    prices = _prices(cli)
    with cli.transaction() as db:
        had = {(p.provider, p.model, p.resolution): p.override for p in prices.table(db)}
        price = prices.clear_override(db, provider, model, resolution, CONSOLE)
    what = "back to the default" if had.get((provider, model, resolution)) else "had no override"
    click.echo(
        f"{price.provider} {price.model} {price.resolution}: {what}, {price.default_units} units"
    )
