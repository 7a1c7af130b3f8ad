"""DESIGN 4.1 rules not pinned elsewhere: a reset token lives exactly one hour and is used once
even by racing confirmations, blocked admins cannot log in, and registration and reset are
limited per account across IPs and per IP across accounts."""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any

import pytest
import sqlalchemy as sa
import webtest

from apiclient import ApiClient
from nproxy_core.accounts.models import PasswordResetToken, User


def reset_token(api: ApiClient, outbox: list[dict[str, str]], email: str) -> str:
    assert api.post("/api/v1/auth/password-reset", {"email": email}).status_int == 202
    match = re.search(r"reset-password\?token=([\w-]+)", outbox[-1]["body"])
    assert match, outbox[-1]["body"]
    return match.group(1)


def age_tokens(db: Any, by: dt.timedelta) -> None:
    """Make every token as if it had been issued ``by`` earlier."""
    for row in db.scalars(sa.select(PasswordResetToken)):
        row.created_at -= by
        row.expires_at -= by
    db.commit()


@pytest.mark.parametrize(("age_minutes", "accepted"), [(59, True), (61, False)])
def test_a_reset_token_is_valid_for_one_hour(api, db, outbox, user_factory, age_minutes, accepted):
    user_factory("hour@example.com")
    token = reset_token(api, outbox, "hour@example.com")
    row = db.scalar(sa.select(PasswordResetToken))
    # One hour from issue (the two stamps are taken a moment apart in the same request).
    assert abs(row.expires_at - row.created_at - dt.timedelta(hours=1)) < dt.timedelta(seconds=5)
    age_tokens(db, dt.timedelta(minutes=age_minutes))

    res = api.post(
        "/api/v1/auth/password-reset/confirm", {"token": token, "password": "brand new pass"}
    )
    if accepted:
        assert res.status_int == 204
        assert api.login("hour@example.com", "brand new pass").status_int == 200
    else:
        assert res.status_int == 400
        assert res.json["error"]["fields"] == {"token": "invalid"}
        assert "expired" in res.json["error"]["message"]
        assert api.login("hour@example.com", "brand new pass").status_int == 401
        assert api.login("hour@example.com").status_int == 200


def test_racing_confirmations_use_a_token_once(app, db, outbox, user_factory):
    version = user_factory("race@example.com").session_version
    token = reset_token(ApiClient(app), outbox, "race@example.com")
    clients = [
        ApiClient(webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"}))
        for _ in range(8)
    ]
    tokens = [client.csrf() for client in clients]
    barrier = threading.Barrier(len(clients))
    answers: list[Any] = [None] * len(clients)

    def confirm(n: int) -> None:
        barrier.wait()
        answers[n] = clients[n].app.post_json(
            "/api/v1/auth/password-reset/confirm",
            {"token": token, "password": f"new password {n}"},
            headers={"X-CSRF-Token": tokens[n]},
            status="*",
        )

    threads = [threading.Thread(target=confirm, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(a.status_int for a in answers)
    assert statuses == [204] + [400] * (len(clients) - 1)
    winner = next(n for n, a in enumerate(answers) if a.status_int == 204)
    checker = ApiClient(app)
    assert checker.login("race@example.com", f"new password {winner}").status_int == 200
    db.expire_all()
    assert db.scalar(sa.select(User.session_version)) == version + 1


def test_a_blocked_admin_cannot_log_in(api, user_factory):
    user_factory("root@example.com", admin=True, blocked=True)
    res = api.login("root@example.com")
    assert res.status_int == 403
    assert res.json["error"]["code"] == "forbidden"
    assert api.get("/api/v1/me").status_int == 401
    assert api.get("/api/v1/session").json["user"] is None


@pytest.fixture
def limited(make_app: Any) -> ApiClient:
    return ApiClient(
        make_app(
            nproxy__ratelimit__register="3/minute",
            nproxy__ratelimit__password_reset="3/minute",
            nproxy__ratelimit__password_reset_account="3/minute",
        )
    )


def from_ip(n: int) -> dict[str, str]:
    return {"REMOTE_ADDR": f"10.1.0.{n}"}


def test_registration_is_limited_per_address_and_ip_but_no_one_can_block_a_sign_up(limited, db):
    body = {"email": "target@example.com", "password": "short"}
    for _ in range(3):
        res = limited.post("/api/v1/auth/register", body, extra_environ=from_ip(1))
        assert res.status_int == 400
    res = limited.post(
        "/api/v1/auth/register",
        {"email": "Target@Example.com", "password": "long enough now"},
        extra_environ=from_ip(1),
    )
    assert res.status_int == 429
    assert res.json["error"]["code"] == "rate_limited"
    assert db.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    # The owner of the address, from anywhere else, still signs up.
    res = limited.post(
        "/api/v1/auth/register",
        {"email": "target@example.com", "password": "long enough now"},
        extra_environ=from_ip(99),
    )
    assert res.status_int == 201


def test_reset_is_limited_per_account_across_new_ips_and_per_ip_across_accounts(
    limited, db, outbox, user_factory
):
    user_factory("victim@example.com")
    for n in range(3):
        res = limited.post(
            "/api/v1/auth/password-reset", {"email": "victim@example.com"}, extra_environ=from_ip(n)
        )
        assert res.status_int == 202
    res = limited.post(
        "/api/v1/auth/password-reset", {"email": "victim@example.com"}, extra_environ=from_ip(50)
    )
    assert res.status_int == 429
    # The refused request issued no token and sent no mail.
    assert len(outbox) == 3
    assert db.scalar(sa.select(sa.func.count()).select_from(PasswordResetToken)) == 3

    for n in range(3):
        res = limited.post(
            "/api/v1/auth/password-reset",
            {"email": f"other{n}@example.com"},
            extra_environ=from_ip(7),
        )
        assert res.status_int == 202
    res = limited.post(
        "/api/v1/auth/password-reset", {"email": "other9@example.com"}, extra_environ=from_ip(7)
    )
    assert res.status_int == 429
