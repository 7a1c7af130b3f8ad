"""``nproxy packs list|add|edit|grant``: credit packs and granted units from the console,
audited with surface cli."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from admin_support import audit_rows
from cli_runner import nproxy, one_line_error, write_ini
from nproxy_core.billing.cycles import add_months
from nproxy_core.billing.models import BalanceSource, CreditPack, PackBalance
from nproxy_core.cli import main


@pytest.fixture
def ini(tmp_path: Path, base_settings: dict[str, Any], db: Any) -> str:
    return str(write_ini(tmp_path, base_settings))


def run(ini: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["-c", ini, *args])


def test_packs_add_list_and_edit(ini, db):
    empty = run(ini, "packs", "list")
    assert empty.exit_code == 0 and "no packs" in empty.stdout
    added = run(
        ini, "packs", "add", "small", "--name", "Small", "--price", "4.50", "--currency", "usd",
        "--units", "120", "--models", "m1", "--stars", "250",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == "added pack small: 4.50 USD, 120 units for 12 months"
    listed = run(ini, "packs", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == [
        {
            "code": "small",
            "name": "Small",
            "price": "4.50",
            "currency": "USD",
            "price_stars": 250,
            "units": 120,
            "valid_months": 12,
            "models": ["m1"],
            "public": True,
            "active": True,
            "translations": {},
        }
    ]
    edited = run(ini, "packs", "edit", "small", "--inactive", "--hidden", "--valid-months", "6")
    assert edited.exit_code == 0, edited.output
    db.expire_all()
    small = db.scalar(sa.select(CreditPack))
    assert (small.active, small.public, small.valid_months, small.models) == (
        False,
        False,
        6,
        ["m1"],
    )
    table = run(ini, "packs", "list")
    assert "small" in table.stdout and "hidden inactive" in table.stdout
    actions = [(r.action, r.surface) for r in audit_rows(db) if r.target_type == "pack"]
    assert actions == [("pack.add", "cli"), ("pack.edit", "cli")]


def test_packs_commands_name_what_is_wrong(ini, db):
    bad = run(ini, "packs", "add", "small", "--name", "Small", "--price", "0", "--currency",
              "USD", "--units", "5")  # fmt: skip
    assert bad.exit_code != 0 and "a credit pack needs a price above 0" in bad.stderr
    missing = run(ini, "packs", "edit", "huge", "--units", "5")
    assert missing.exit_code != 0 and "no pack 'huge'" in missing.stderr
    nothing = run(ini, "packs", "edit", "huge")
    assert nothing.exit_code != 0 and "nothing to change" in nothing.output
    assert db.scalar(sa.select(sa.func.count()).select_from(CreditPack)) == 0


def test_packs_grant_gives_units_of_their_own(ini, db, user_factory):
    user = user_factory("gift@example.com")
    granted = run(
        ini, "packs", "grant", user.email, "--units", "50", "--months", "2", "--reason", "sorry"
    )
    assert granted.exit_code == 0, granted.output
    assert granted.stdout.startswith("granted gift@example.com 50 units until ")
    db.expire_all()
    [balance] = db.scalars(sa.select(PackBalance)).all()
    assert (balance.user_id, balance.units, balance.source, balance.pack_id) == (
        user.id,
        50,
        BalanceSource.GRANT,
        None,
    )
    assert balance.expires_at == add_months(balance.starts_at, 2)
    [row] = audit_rows(db, "pack.grant")
    assert (row.surface, row.target_type, row.target_id) == ("cli", "user", str(user.id))
    assert row.after["reason"] == "sorry" and row.after["units"] == 50


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ("--units", "0", "--months", "1", "--reason", "x"),
            "units must be a whole number above 0",
        ),
        (("--units", "5", "--months", "soon", "--reason", "x"), "months must be a whole number"),
        (("--units", "5", "--months", "1", "--reason", " "), "a reason is required"),
    ],
)
def test_packs_grant_refuses_bad_input_and_writes_nothing(ini, db, user_factory, args, says):
    user = user_factory("gift@example.com")
    refused = run(ini, "packs", "grant", user.email, *args)
    assert refused.exit_code != 0 and says in refused.stderr
    unknown = run(ini, "packs", "grant", "nobody@example.com", *args)
    assert unknown.exit_code != 0
    assert db.scalar(sa.select(sa.func.count()).select_from(PackBalance)) == 0
    assert audit_rows(db, "pack.grant") == []


def test_the_installed_command_lists_packs(ini, db):
    """The real console script finds the group through the lazy command index."""
    result = nproxy("-c", ini, "packs", "edit", "huge", "--units", "3")
    assert "no pack 'huge'" in one_line_error(result)
    assert "packs" in nproxy("--help").stdout
