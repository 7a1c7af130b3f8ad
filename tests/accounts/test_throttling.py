"""Targeted lockout (DESIGN 9): whatever an attacker sends from elsewhere, the owner logs in and
resets the password from the address they usually use."""

from __future__ import annotations

from typing import Any

import pytest

from apiclient import PASSWORD, ApiClient

HOME = "192.0.2.10"


def from_ip(ip: str) -> dict[str, str]:
    return {"REMOTE_ADDR": ip}


@pytest.fixture
def guarded(make_app: Any) -> ApiClient:
    # The shipped defaults, as an attacker meets them.
    return ApiClient(
        make_app(
            nproxy__ratelimit__login="10/minute",
            nproxy__ratelimit__login_account="20/hour;100/day",
            nproxy__ratelimit__password_reset="5/minute",
            nproxy__ratelimit__password_reset_account="10/day",
        )
    )


def login(client: ApiClient, ip: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/api/v1/auth/login",
        {"email": "owner@example.com", "password": password},
        extra_environ=from_ip(ip),
    )


def test_failures_from_many_addresses_never_lock_the_owner_out_at_home(guarded, user_factory):
    user_factory("owner@example.com")
    assert login(guarded, HOME).status_int == 200
    guarded.logout()
    # 150 guesses from 150 addresses: over every account-wide window.
    answers = {
        login(guarded, f"10.7.{n // 200}.{n % 200}", "guess!!!").status_int for n in range(150)
    }
    assert answers == {401, 429}
    # The attacker is now refused even with the right password from a new address...
    assert login(guarded, "10.8.0.1").status_int == 429
    # ...but the owner, from home, logs in at once.
    assert login(guarded, HOME).status_int == 200


def test_failures_from_one_address_lock_only_that_address(guarded, user_factory):
    user_factory("owner@example.com")
    assert login(guarded, HOME).status_int == 200
    guarded.logout()
    for _ in range(10):
        assert login(guarded, "10.9.0.1", "guess!!!").status_int == 401
    assert login(guarded, "10.9.0.1", "guess!!!").status_int == 429
    assert login(guarded, HOME).status_int == 200


def test_the_owners_own_mistakes_slow_the_owner_down(make_app, user_factory):
    client = ApiClient(make_app(nproxy__ratelimit__login="3/minute"))
    user_factory("owner@example.com")
    for _ in range(3):
        assert login(client, HOME, "typo typo").status_int == 401
    assert login(client, HOME).status_int == 429


def test_successful_logins_do_not_count_against_the_account(make_app, user_factory):
    client = ApiClient(
        make_app(nproxy__ratelimit__login="100/minute", nproxy__ratelimit__login_account="2/hour")
    )
    user_factory("owner@example.com")
    for n in range(5):
        assert login(client, f"10.3.0.{n}").status_int == 200
        client.logout()


def test_reset_requests_from_elsewhere_never_block_the_owners_reset(guarded, outbox, user_factory):
    user_factory("owner@example.com")
    assert login(guarded, HOME).status_int == 200
    guarded.logout()
    for n in range(30):
        guarded.post(
            "/api/v1/auth/password-reset",
            {"email": "owner@example.com"},
            extra_environ=from_ip(f"10.5.0.{n}"),
        )
    # The stranger's requests sent at most the account-wide allowance of mail.
    assert len(outbox) == 10
    res = guarded.post(
        "/api/v1/auth/password-reset", {"email": "owner@example.com"}, extra_environ=from_ip(HOME)
    )
    assert res.status_int == 202
    assert len(outbox) == 11
