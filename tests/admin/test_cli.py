"""The console's admin commands (DESIGN 7), run as an operator runs them: in a subprocess,
through the same services as the web admin, audited with surface ``cli``; a refusal is one
line on stderr and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import audit_rows
from cli_runner import nproxy, one_line_error, write_ini
from fakes.gemini import FakeGemini
from nproxy_core.accounts.models import User
from nproxy_core.billing.models import BillingCycle
from nproxy_core.keypool.models import KEY_TEST_REFERENCE, KeyAttempt, KeyState, ProviderKey

SECRET = "AIzaSyCONSOLEtestCONSOLEtestCONSOLE0x9Q2"


@pytest.fixture
def ini(tmp_path: Path, base_settings: dict[str, Any], db: Any, gemini: FakeGemini) -> str:
    settings = {
        **base_settings,
        "nproxy.providers": "demo nanobanana",
        "nanobanana.api_base": gemini.base_url,
        "nanobanana.timeout_seconds": "10",
    }
    return str(write_ini(tmp_path, settings))


def run(ini: str, *args: str, stdin: str = "") -> Any:
    return nproxy("-c", ini, *args, stdin=stdin)


def test_grant_cycle_gives_one_free_cycle_with_its_reason(ini, db, user_factory):
    user = user_factory("console-gift@example.com")
    done = run(ini, "users", "grant-cycle", "Console-Gift@Example.com", "--reason", "refund #12")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("granted console-gift@example.com a cycle from ")
    [cycle] = db.scalars(sa.select(BillingCycle)).all()
    assert cycle.user_id == user.id and cycle.grant_reason == "refund #12"
    [entry] = audit_rows(db, "user.grant_cycle")
    assert (entry.actor, entry.surface) == ("console", "cli")
    assert entry.after["reason"] == "refund #12"


def test_grant_cycle_refuses_a_missing_reason_or_an_unknown_user(ini, db, user_factory):
    user_factory("someone@example.com")
    missing = run(ini, "users", "grant-cycle", "someone@example.com")
    assert missing.returncode != 0 and "--reason" in missing.stderr
    blank = run(ini, "users", "grant-cycle", "someone@example.com", "--reason", " ")
    assert one_line_error(blank) == "Error: a reason is required: say why"
    unknown = run(ini, "users", "grant-cycle", "nobody@example.com", "--reason", "x")
    assert one_line_error(unknown) == "Error: no user with email nobody@example.com"
    assert db.scalars(sa.select(BillingCycle)).all() == [] and audit_rows(db) == []


def test_block_and_unblock_from_the_console(ini, db, user_factory):
    user = user_factory("console-block@example.com")
    assert run(ini, "users", "block", user.email).stdout.strip() == f"blocked {user.email}"
    db.expire_all()
    assert db.get(User, user.id).is_blocked
    assert one_line_error(run(ini, "users", "block", user.email)) == (
        f"Error: {user.email} is already blocked"
    )
    assert run(ini, "users", "unblock", user.email).stdout.strip() == f"unblocked {user.email}"
    assert [(e.action, e.surface) for e in audit_rows(db)] == [
        ("user.block", "cli"),
        ("user.unblock", "cli"),
    ]


def test_the_console_cannot_block_the_last_admin(ini, db, user_factory):
    admin = user_factory("only-admin@example.com", admin=True)
    error = one_line_error(run(ini, "users", "block", admin.email))
    assert "last admin who can log in" in error
    db.expire_all()
    assert not db.get(User, admin.id).is_blocked


def test_keys_add_takes_a_project_and_keys_list_shows_it(ini, db):
    command = ["keys", "add", "--provider", "nanobanana", "--project", "gcp-7", "--label", "seven"]
    added = run(ini, *command, stdin=SECRET + "\n")
    assert added.returncode == 0, added.stderr
    listed = json.loads(run(ini, "keys", "list", "--json").stdout)
    assert listed[0]["project"] == "gcp-7"
    table = run(ini, "keys", "list").stdout
    assert "project" in table.splitlines()[0] and "gcp-7" in table
    [entry] = audit_rows(db, "key.add")
    assert entry.after["project"] == "gcp-7" and SECRET not in str(entry.after)


def test_keys_test_prints_the_outcome_class_and_records_an_attempt(ini, db, gemini):
    run(ini, "keys", "add", "--provider", "nanobanana", stdin=SECRET + "\n")
    ok = run(ini, "keys", "test", "1")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(
        "Key accepted; this does not prove it can generate images. "
        "Key #1, free check over direct (HTTP 200, "
    )
    assert ok.stdout.rstrip().endswith("State: active.")
    assert gemini.requests[-1].method == "GET"

    gemini.behave(SECRET, "leaked_key")
    bad = run(ini, "keys", "test", "1")
    assert bad.returncode == 1 and "failed the free check: key_rejected." in bad.stdout
    assert "(HTTP 403, " in bad.stdout and SECRET not in bad.stdout + bad.stderr
    assert "State: manual review, out of service until an admin restores it." in bad.stdout

    gemini.behave(SECRET, "success")
    image = run(ini, "keys", "test", "1", "--generate")
    assert image.returncode == 0 and image.stdout.startswith("Key #1 made an image. ")
    # A successful test never restores: the key stays in review until an admin restores it.
    assert "State: manual review, out of service" in image.stdout
    db.expire_all()
    assert db.get(ProviderKey, 1).state == KeyState.MANUAL_REVIEW
    tests = db.scalars(sa.select(KeyAttempt).where(KeyAttempt.reference == KEY_TEST_REFERENCE))
    assert [a.outcome for a in tests] == ["success", "key_rejected", "success"]
    assert [e.surface for e in audit_rows(db, "key.test")] == ["cli"] * 3


def test_keys_test_of_an_unknown_key_is_one_line(ini, db):
    assert one_line_error(run(ini, "keys", "test", "42")) == "Error: no provider key with id 42"


def test_keys_disable_from_the_console(ini, db):
    run(ini, "keys", "add", "--provider", "nanobanana", stdin=SECRET + "\n")
    assert run(ini, "keys", "disable", "1").stdout.strip() == "key 1 is disabled"
    assert [e.action for e in audit_rows(db)] == ["key.add", "key.disable"]
