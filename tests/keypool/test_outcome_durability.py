"""Which outcomes wait for the disk when they commit (statements.py): a success does not (its
job's finish, which does, makes it durable), a failure does (a cooldown or a review must
survive a crash)."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql

from nproxy_core.keypool.rules import FAILED, PROJECT_RATE_LIMITED, SUCCEEDED
from nproxy_core.keypool.statements import LOGGED


def sql(statement) -> str:
    return str(statement.compile(dialect=postgresql.dialect()))


def test_a_success_is_logged_without_waiting_for_the_disk():
    assert "set_config(" in sql(LOGGED[SUCCEEDED])
    params = LOGGED[SUCCEEDED].compile(dialect=postgresql.dialect()).params
    assert (params["set_config_1"], params["set_config_2"]) == ("synchronous_commit", "off")


@pytest.mark.parametrize("rule", [FAILED, PROJECT_RATE_LIMITED], ids=["failed", "rate limited"])
def test_a_failure_is_logged_waiting_for_the_disk(rule):
    assert "set_config" not in sql(LOGGED[rule])
