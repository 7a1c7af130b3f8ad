"""``nproxy users reset-2fa EMAIL``: the console turns two-factor login off for a locked-out
admin, audited with surface ``cli``; anything else is refused with one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from admin_support import audit_rows
from cli_runner import write_ini
from nproxy_core.cli import main


@pytest.fixture
def ini(tmp_path: Path, base_settings: dict[str, Any], db: Any) -> str:
    return str(write_ini(tmp_path, base_settings))


def run(ini: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["-c", ini, *args])


def test_reset_turns_it_off_and_the_password_alone_logs_in(
    ini, db, api, service, user_factory, enrol
):
    enrolled = enrol(user_factory("admin@example.com", admin=True))
    refused = api.login("admin@example.com")
    assert refused.json["error"]["code"] == "otp_required"
    result = run(ini, "users", "reset-2fa", " Admin@Example.com ")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "two-factor login reset for admin@example.com: the password alone logs in"
    )
    assert not service.is_enabled(db, enrolled.user.id)
    assert api.login("admin@example.com").status_int == 200
    rows = audit_rows(db, "user.reset_2fa")
    assert [(r.actor, r.surface, r.target_type, r.target_id, r.before, r.after) for r in rows] == [
        (
            "console",
            "cli",
            "user",
            str(enrolled.user.id),
            {"two_factor": True},
            {"two_factor": False},
        )
    ]
    # The old recovery codes died with it.
    assert not service.verify(db, enrolled.user.id, enrolled.recovery_codes[0])


def test_reset_of_an_account_without_it_is_refused(ini, db, user_factory):
    user_factory("plain@example.com")
    result = run(ini, "users", "reset-2fa", "plain@example.com")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: plain@example.com has no two-factor login to reset"
    assert audit_rows(db, "user.reset_2fa") == []


def test_reset_of_an_unknown_email_names_it(ini, db):
    result = run(ini, "users", "reset-2fa", "nobody@example.com")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no user with email nobody@example.com"


def test_reset_is_listed_in_the_users_help(ini):
    result = run(ini, "users", "--help")
    assert result.exit_code == 0 and "reset-2fa" in result.output
