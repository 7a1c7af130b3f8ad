"""``nproxy users reset-2fa EMAIL``: the console turns two-factor login off for a locked-out
admin, audited with surface ``cli``; anything else is refused with one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
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


NEW_SECRET = "the-next-server-secret-" + "n" * 40


def test_secrets_rotate_re_encrypts_two_factor_secrets(
    tmp_path, base_settings, db, user_factory, enrol
):
    from nproxy_core.keypool.crypto import SecretBox
    from nproxy_core.twofactor.models import TotpCredential

    enrolled = enrol(user_factory("admin@example.com", admin=True))
    old = base_settings["nproxy.secret"]
    settings = {**base_settings, "nproxy.secret": NEW_SECRET, "nproxy.secret_previous": old}
    ini = str(write_ini(tmp_path, settings, "rotated.ini"))
    first = run(ini, "secrets", "rotate")
    assert first.exit_code == 0, first.output
    assert "two-factor secrets: 1 re-encrypted with the current secret, 0 already current" in (
        first.output
    )
    db.expire_all()
    stored = db.scalar(sa.select(TotpCredential.secret_encrypted))
    # The new secret alone opens it: the old one can be dropped.
    assert SecretBox(NEW_SECRET).decrypt(stored) == enrolled.secret
    again = run(ini, "secrets", "rotate")
    assert "two-factor secrets: 0 re-encrypted with the current secret, 1 already current" in (
        again.output
    )


def test_secrets_rotate_refuses_when_a_two_factor_secret_cannot_be_read(
    tmp_path, base_settings, db, user_factory, enrol
):
    from nproxy_core.twofactor.models import TotpCredential

    enrolled = enrol(user_factory("admin@example.com", admin=True))
    before = db.scalar(sa.select(TotpCredential.secret_encrypted))
    # NPROXY_SECRET changed without the old one kept.
    ini = str(write_ini(tmp_path, {**base_settings, "nproxy.secret": NEW_SECRET}, "lost.ini"))
    refused = run(ini, "secrets", "rotate")
    assert refused.exit_code == 1
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert len(lines) == 1, refused.output
    assert f"two-factor secrets of users {enrolled.user.id} cannot be decrypted" in lines[0]
    assert "nothing was changed" in lines[0]
    assert NEW_SECRET not in refused.output and base_settings["nproxy.secret"] not in refused.output
    db.expire_all()
    assert db.scalar(sa.select(TotpCredential.secret_encrypted)) == before
