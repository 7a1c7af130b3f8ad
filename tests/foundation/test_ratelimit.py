"""Login, registration and reset are rate limited per IP and per account, and recover."""

from __future__ import annotations

import time

import pytest

from apiclient import ApiClient


@pytest.fixture
def limited(make_app):
    return ApiClient(
        make_app(
            nproxy__ratelimit__login="3/minute",
            nproxy__ratelimit__login_account="3/minute",
            nproxy__ratelimit__register="3/minute",
            nproxy__ratelimit__password_reset="3/minute",
        )
    )


def test_login_trips_and_recovers(make_app, user_factory):
    # A short window, so that recovery can be seen; trips are checked with a long window below.
    client = ApiClient(make_app(nproxy__ratelimit__login="3/5second"))
    user_factory("limited@example.com")
    for _ in range(3):
        assert client.login("limited@example.com", "wrong password!").status_int == 401
    res = client.login("limited@example.com")
    assert res.status_int == 429
    assert res.json["error"]["code"] == "rate_limited"
    assert int(res.headers["Retry-After"]) >= 1
    # Not logged in, even with the right password.
    assert client.get("/api/v1/me").status_int == 401
    time.sleep(int(res.headers["Retry-After"]) + 0.5)
    assert client.login("limited@example.com").status_int == 200


def test_login_limit_trips_within_a_long_window(limited, user_factory):
    user_factory("slow@example.com")
    for _ in range(3):
        assert limited.login("slow@example.com", "wrong password!").status_int == 401
    assert limited.login("slow@example.com").status_int == 429


def test_the_account_ceiling_holds_across_new_ips(limited, user_factory):
    user_factory("target@example.com")
    for n in range(3):
        res = limited.post(
            "/api/v1/auth/login",
            {"email": "target@example.com", "password": "guess"},
            extra_environ={"REMOTE_ADDR": f"10.0.0.{n}"},
        )
        assert res.status_int == 401
    res = limited.post(
        "/api/v1/auth/login",
        {"email": "target@example.com", "password": "guess"},
        extra_environ={"REMOTE_ADDR": "10.0.0.99"},
    )
    assert res.status_int == 429
    assert "from new places" in res.json["error"]["message"]


def test_ip_limit_holds_across_accounts(limited, db):
    for n in range(3):
        assert limited.register(f"new{n}@example.com").status_int == 201
        limited.logout()
    res = limited.register("new9@example.com")
    assert res.status_int == 429
    assert res.json["error"]["code"] == "rate_limited"
    from sqlalchemy import func, select

    from nproxy_core.accounts.models import User

    assert db.scalar(select(func.count()).select_from(User)) == 3


def test_password_reset_is_limited(limited):
    for _ in range(3):
        assert (
            limited.post("/api/v1/auth/password-reset", {"email": "x@example.com"}).status_int
            == 202
        )
    res = limited.post("/api/v1/auth/password-reset", {"email": "x@example.com"})
    assert res.status_int == 429
