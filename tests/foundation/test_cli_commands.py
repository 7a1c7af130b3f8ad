"""``nproxy users list``, ``keys edit`` and ``keys delete``, run in-process as the console runs
them (click's CliRunner, an ini file, the real database)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from admin_support import audit_rows, make_generation
from cli_runner import write_ini
from nproxy_core.admin import queries
from nproxy_core.cli import main
from nproxy_core.db import utcnow
from nproxy_core.keypool.models import KeyAttempt, KeyState, ProviderKey, Proxy


@pytest.fixture
def ini(tmp_path: Path, base_settings: dict[str, Any], db: Any) -> str:
    return str(write_ini(tmp_path, base_settings))


def run(ini: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["-c", ini, *args], input=stdin)


def one_line(result: Result) -> str:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- users list --------------------------------------------------------------------------------


def test_users_list_shows_each_account_newest_first_with_its_cycle(ini, user_factory, make_cycle):
    subscriber = user_factory("paid@example.com")
    cycle = make_cycle(subscriber)
    user_factory("root@example.com", admin=True, blocked=True)
    expired = user_factory("expired@example.com")
    make_cycle(expired, starts_at=utcnow() - dt.timedelta(days=40), ends_at=utcnow())

    listed = run(ini, "users", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["email"] for r in rows] == [
        "expired@example.com",
        "root@example.com",
        "paid@example.com",
    ]
    paid = rows[-1]
    assert paid["cycle_ends_at"] == cycle.ends_at.isoformat() and paid["plan"] == "Monthly"
    assert rows[0]["cycle_ends_at"] is None  # ended: no current cycle
    assert (rows[1]["role"], rows[1]["blocked"]) == ("admin", True)

    table = run(ini, "users", "list")
    assert table.exit_code == 0, table.output
    line = next(line for line in table.stdout.splitlines() if "paid@example.com" in line)
    assert f"{cycle.ends_at:%Y-%m-%d %H:%M}" in line


def test_users_list_filters_by_plan_and_pages_by_id(ini, user_factory, make_cycle):
    users = [user_factory(f"u{i}@example.com") for i in range(5)]
    for user in users[:3]:
        make_cycle(user)

    monthly = run(ini, "users", "list", "--plan", "monthly", "--json")
    assert [r["email"] for r in json.loads(monthly.stdout)] == [
        "u2@example.com",
        "u1@example.com",
        "u0@example.com",
    ]
    assert json.loads(run(ini, "users", "list", "--active", "--json").stdout) == json.loads(
        monthly.stdout
    )
    assert "no plan 'gold'" in one_line(run(ini, "users", "list", "--plan", "gold"))

    first = run(ini, "users", "list", "--limit", "2")
    assert first.exit_code == 0, first.output
    more = first.stdout.strip().splitlines()[-1]
    assert more == f"more: nproxy users list --after {users[3].id}"
    second = run(ini, "users", "list", "--limit", "2", "--after", str(users[3].id), "--json")
    assert [r["email"] for r in json.loads(second.stdout)] == ["u2@example.com", "u1@example.com"]


# --- keys edit and delete --------------------------------------------------------------------


@pytest.fixture
def key(ini, db) -> ProviderKey:
    added = run(
        ini, "keys", "add", "--provider", "demo", "--label", "first", stdin="demo-0123456789\n"
    )
    assert added.exit_code == 0, added.output
    return db.scalar(sa.select(ProviderKey))


def test_keys_edit_changes_what_it_is_given_and_is_audited(ini, db, key):
    run(ini, "proxies", "add", "http://127.0.0.1:3128")
    proxy = db.scalar(sa.select(Proxy))
    edited = run(
        ini,
        "keys",
        "edit",
        str(key.id),
        "--label",
        "renamed",
        "--proxy",
        "http://127.0.0.1:3128",
        "--project",
        "gcp-1",
        "--billing-group",
        "acme",
    )
    assert edited.exit_code == 0, edited.output
    db.expire_all()
    key = db.get(ProviderKey, key.id)
    assert (key.label, key.proxy_id, key.project, key.billing_group) == (
        "renamed",
        proxy.id,
        "gcp-1",
        "acme",
    )
    [entry] = audit_rows(db, "key.edit")
    assert (entry.surface, entry.target_id) == ("cli", str(key.id))
    assert entry.before["label"] == "first" and entry.after["label"] == "renamed"

    direct = run(ini, "keys", "edit", str(key.id), "--proxy", "none", "--label", "")
    assert direct.exit_code == 0, direct.output
    db.expire_all()
    assert db.get(ProviderKey, key.id).proxy_id is None
    assert db.get(ProviderKey, key.id).label is None

    assert "nothing changed" in one_line(run(ini, "keys", "edit", str(key.id), "--proxy", "none"))
    assert "no proxy" in one_line(run(ini, "keys", "edit", str(key.id), "--proxy", "http://x:1"))
    assert run(ini, "keys", "edit", str(key.id)).exit_code == 2  # nothing to change


def _attempt(db, key: ProviderKey, generation: Any) -> None:
    now = utcnow()
    db.add(
        KeyAttempt(
            key_id=key.id,
            provider="demo",
            reference=str(generation.id),
            image_index=0,
            path="direct",
            outcome="success",
            latency_ms=100,
            picked_at=now,
            claim_version=1,
        )
    )
    db.commit()


def test_keys_delete_is_refused_while_a_generation_that_used_it_is_unfinished(
    ini, db, key, user_factory
):
    customer = user_factory()
    running = make_generation(db, customer, status="running")
    _attempt(db, key, running)
    finished = make_generation(db, customer, status="succeeded")
    _attempt(db, key, finished)

    refused = run(ini, "keys", "delete", str(key.id), "--yes")
    line = one_line(refused)
    assert f"(#{key.id}) is in use by 1 unfinished generation(s) ({running.id})" in line
    db.expire_all()
    assert db.get(ProviderKey, key.id).deleted_at is None
    assert audit_rows(db, "key.delete") == []

    running.status = "succeeded"
    db.commit()
    deleted = run(ini, "keys", "delete", str(key.id), "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout.strip() == f"key {key.id} deleted"


def test_a_deleted_key_keeps_its_history_but_leaves_the_pool(ini, db, key, user_factory):
    _attempt(db, key, make_generation(db, user_factory(), status="failed"))
    assert run(ini, "keys", "delete", str(key.id)).exit_code != 0  # asks first; no answer: no
    assert run(ini, "keys", "delete", str(key.id), stdin="y\n").exit_code == 0

    db.expire_all()
    row = db.get(ProviderKey, key.id)
    # The row stays, out of service: the attempts still name a real key, with its label.
    assert row.state == KeyState.DISABLED and row.deleted_at is not None
    assert db.scalar(sa.select(sa.func.count()).select_from(KeyAttempt)) == 1
    [entry] = audit_rows(db, "key.delete")
    assert (entry.surface, entry.target_id, entry.before["label"]) == ("cli", str(key.id), "first")

    assert run(ini, "keys", "list").stdout.strip() == "no keys"
    # Nor is it counted among the disabled keys of the admin pages and /metrics.
    assert queries.key_pool_by_state(db) == {}
    for args in (("restore",), ("disable",), ("edit", "--label", "x"), ("delete", "--yes")):
        refused = run(ini, "keys", args[0], str(key.id), *args[1:])
        assert f"no provider key with id {key.id}" in one_line(refused), args
