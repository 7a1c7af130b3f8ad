"""Fixtures for the quota ledger tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with minimal cost: accounts are set-up here, not what is tested, and the
    default cost takes about a second per hash on the shared test machine."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(
        "nproxy_core.accounts.services._hasher",
        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
