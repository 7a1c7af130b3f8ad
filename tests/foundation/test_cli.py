"""The ``nproxy`` command, run as a person runs it: a subprocess reading an ini file."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from cli_runner import nproxy, write_ini
from nproxy_core.accounts.models import Role, User
from nproxy_core.audit.models import AuditEntry

pytestmark = pytest.mark.slow


@pytest.fixture
def ini(tmp_path, base_settings, database, db) -> Path:
    return write_ini(tmp_path, base_settings)


def test_users_create_admin_from_stdin_is_audited(ini, db):
    # The console script itself, in a process of its own (the other tests run the same
    # group in process).
    result = nproxy(
        "-c",
        str(ini),
        "users",
        "create",
        "Root@Example.com",
        "--admin",
        "--password-stdin",
        stdin="a strong password\n",
        real=True,
    )
    assert result.returncode == 0, result.stderr
    assert "created admin root@example.com" in result.stdout
    user = db.scalar(sa.select(User))
    assert user.email == "root@example.com" and user.role == Role.ADMIN
    entry = db.scalar(sa.select(AuditEntry))
    assert (entry.surface, entry.action, entry.target_type) == ("cli", "user.create", "user")
    assert entry.target_id == str(user.id)
    assert entry.after == {"email": "root@example.com", "role": "admin"}
    assert "a strong password" not in str(entry.after)


def test_users_create_refusals_are_one_line(ini, db):
    nproxy(
        "-c",
        str(ini),
        "users",
        "create",
        "dup@example.com",
        "--password-stdin",
        stdin="a strong password\n",
    )
    for args, stdin, needle in [
        (("users", "create", "dup@example.com"), "another password\n", "already exists"),
        (("users", "create", "not-an-email"), "a strong password\n", "email"),
        (("users", "create", "short@example.com"), "short\n", "at least 8"),
    ]:
        result = nproxy("-c", str(ini), *args, "--password-stdin", stdin=stdin)
        assert result.returncode != 0
        assert needle in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert db.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_missing_config_file_and_setting(tmp_path, base_settings):
    result = nproxy("-c", str(tmp_path / "missing.ini"), "plugins")
    assert result.returncode != 0
    assert "config file not found" in result.stderr
    settings = {k: v for k, v in base_settings.items() if k != "nproxy.secret"}
    ini = write_ini(tmp_path, settings)
    result = nproxy("-c", str(ini), "db", "upgrade")
    assert result.returncode != 0
    assert "nproxy.secret" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_defaults_to_environment_variable(ini):
    result = nproxy("plugins", env={"NPROXY_CONFIG": str(ini)})
    assert result.returncode == 0, result.stderr


def test_plugins_lists_what_was_found(ini):
    result = nproxy("-c", str(ini), "plugins")
    assert result.returncode == 0, result.stderr
    assert "providers (nproxy.providers):" in result.stdout
    assert "payment processors (nproxy.payments):" in result.stdout
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("demo"))
    assert "enabled" in line


def test_db_upgrade_is_idempotent(ini):
    for _ in range(2):
        result = nproxy("-c", str(ini), "db", "upgrade")
        assert result.returncode == 0, result.stderr


def test_unknown_command_exits_non_zero(ini):
    result = nproxy("-c", str(ini), "frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr
