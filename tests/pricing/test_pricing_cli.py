"""``nproxy pricing list/set/clear`` (DESIGN 4.12): every enabled price as a table or JSON; an
override set or cleared from the console changes what an image costs and is audited with the
console as actor; a refused command prints one line, exits non-zero and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from admin_support import audit_rows
from cli_runner import nproxy, one_line_error, write_ini
from nproxy_core.cli import main
from nproxy_core.pricing.models import UnitPrice


@pytest.fixture
def ini(tmp_path: Path, base_settings: dict[str, Any], db: Any) -> str:
    return str(write_ini(tmp_path, base_settings))


def run(ini: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["-c", ini, *args])


def listed(ini: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    result = run(ini, "pricing", "list", "--json")
    assert result.exit_code == 0, result.output
    return {(p["provider"], p["model"], p["resolution"]): p for p in json.loads(result.stdout)}


def overrides(db: Any) -> list[tuple[str, str, str, int, str | None]]:
    db.expire_all()
    return [
        (r.provider, r.model, r.resolution, r.units, r.updated_by)
        for r in db.scalars(sa.select(UnitPrice).order_by(UnitPrice.id))
    ]


def test_list_shows_every_enabled_price(ini, db):
    prices = listed(ini)
    assert len(prices) == 15  # demo: 5 presets; Demo Pro: 10
    assert prices[("demo", "demo-image-1", "square")] == {
        "provider": "demo",
        "model": "demo-image-1",
        "label": "Demo",
        "resolution": "square",
        "usd": "0.039",
        "default_units": 1,
        "override": None,
        "units": 1,
    }
    assert prices[("demo", "demo-pro", "tall_2k")]["units"] == 6
    table = run(ini, "pricing", "list")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "provider", "model", "resolution", "usd", "default", "override", "units"
    ]  # fmt: skip
    assert "demo      demo-pro      wide_2k       0.234        6         -      6" in lines
    assert lines[-1] == "one unit = 0.039 USD (nproxy.units.usd_per_unit)"


def test_set_and_clear_change_the_price_and_are_audited_as_the_console(ini, db):
    done = run(ini, "pricing", "set", "demo", "demo-pro", "square", "4")
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "demo demo-pro square: 4 units (default 3)"
    assert overrides(db) == [("demo", "demo-pro", "square", 4, "console")]
    price = listed(ini)[("demo", "demo-pro", "square")]
    assert (price["default_units"], price["override"], price["units"]) == (3, 4, 4)
    table = run(ini, "pricing", "list").stdout
    assert ["demo", "demo-pro", "square", "0.117", "3", "4", "4"] in [
        line.split() for line in table.splitlines()
    ]
    cleared = run(ini, "pricing", "clear", "demo", "demo-pro", "square")
    assert cleared.exit_code == 0, cleared.output
    assert cleared.stdout.strip() == "demo demo-pro square: back to the default, 3 units"
    assert overrides(db) == []
    assert listed(ini)[("demo", "demo-pro", "square")]["units"] == 3
    rows = [r for r in audit_rows(db) if r.action.startswith("pricing.")]
    assert [(r.action, r.actor, r.surface, r.target_id, r.before, r.after) for r in rows] == [
        ("pricing.unit_price_set", "console", "cli", "demo:demo-pro:square", None, {"units": 4}),
        (
            "pricing.unit_price_cleared", "console", "cli", "demo:demo-pro:square",
            {"units": 4}, {"units": 3},
        ),
    ]  # fmt: skip
    # Clearing what has no override says so and writes nothing.
    again = run(ini, "pricing", "clear", "demo", "demo-pro", "square")
    assert again.exit_code == 0
    assert again.stdout.strip() == "demo demo-pro square: had no override, 3 units"
    assert len([r for r in audit_rows(db) if r.action.startswith("pricing.")]) == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("set", "demo", "demo-pro", "square", "0"), "whole number of units from 1 to 1000"),
        (("set", "demo", "demo-pro", "square", "lots"), "whole number of units from 1 to 1000"),
        (("set", "demo", "demo-pro", "square", "1001"), "whole number of units from 1 to 1000"),
        (("set", "demo", "nope", "square", "2"), "There is no model 'nope' of provider 'demo'"),
        (("set", "openai", "gpt-image-1", "square", "2"), "of provider 'openai' enabled here"),
        (("set", "demo", "demo-pro", "huge", "2"), "has no resolution 'huge'"),
        (("clear", "demo", "demo-pro", "huge"), "has no resolution 'huge'"),
    ],
)
def test_a_refused_command_says_why_in_one_line_and_changes_nothing(ini, db, args, says):
    run(ini, "pricing", "set", "demo", "demo-pro", "square", "5")
    before = (overrides(db), audit_rows(db))
    result = nproxy("-c", ini, "pricing", *args)
    assert says in one_line_error(result)
    assert (overrides(db), audit_rows(db)) == before
