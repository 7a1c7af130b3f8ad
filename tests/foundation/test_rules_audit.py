"""DESIGN 4.7: every admin action writes an audit row (actor, surface, action, target,
before/after, time), and a refused one writes none. ``users create`` without ``--admin`` is an
admin action too."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from cli_runner import nproxy, write_ini
from nproxy_core.accounts.models import Role, User
from nproxy_core.audit.models import AuditEntry
from nproxy_core.db import utcnow


@pytest.fixture
def ini(tmp_path, base_settings, database, db) -> Path:
    return write_ini(tmp_path, base_settings)


@pytest.mark.slow
def test_users_create_is_audited_with_every_field_and_a_refusal_is_not(ini, db):
    started = utcnow()
    created = nproxy(
        "-c",
        str(ini),
        "users",
        "create",
        "Plain@Example.com",
        "--password-stdin",
        stdin="a strong password\n",
    )
    assert created.returncode == 0, created.stderr
    refused = nproxy(
        "-c",
        str(ini),
        "users",
        "create",
        "plain@example.com",
        "--password-stdin",
        stdin="another password\n",
    )
    assert refused.returncode != 0

    user = db.scalars(sa.select(User)).one()
    assert user.role == Role.USER
    entry = db.scalars(sa.select(AuditEntry)).one()
    assert entry.actor and entry.surface == "cli" and entry.action == "user.create"
    assert (entry.target_type, entry.target_id) == ("user", str(user.id))
    assert entry.before is None
    assert entry.after == {"email": "plain@example.com", "role": "user"}
    assert started - dt.timedelta(seconds=5) <= entry.created_at <= utcnow()
