"""The accounts JSON API through the real app and a real database."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from apiclient import PASSWORD, ApiClient
from nproxy_core.accounts.models import PasswordResetToken, User


def count_users(db) -> int:
    return db.scalar(sa.select(sa.func.count()).select_from(User))


def test_session_is_anonymous_and_gives_a_csrf_token(api):
    body = api.get("/api/v1/session").json
    assert body["user"] is None
    assert len(body["csrf_token"]) >= 32


def test_register_logs_in_and_normalises_email(api, db):
    res = api.register("  Alice@Example.COM ")
    assert res.status_int == 201
    assert res.json["user"]["email"] == "alice@example.com"
    me = api.get("/api/v1/me")
    assert me.status_int == 200
    assert me.json["email"] == "alice@example.com"
    assert me.json["subscription"] == {"status": "none", "current_period_end": None, "plan": None}
    assert me.json["quota"] == {"bucket": 0, "max_batch_now": 0, "max_units_now": 0}
    assert me.json["packs"] == []
    user = db.scalar(sa.select(User))
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_session_cookie_is_httponly_and_lax(app):
    res = app.post_json(
        "/api/v1/auth/register",
        {"email": "c@example.com", "password": PASSWORD},
        headers={"X-CSRF-Token": app.get("/api/v1/session").json["csrf_token"]},
    )
    cookie = next(v for k, v in res.headerlist if k == "Set-Cookie" and "nproxy_session" in v)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "secure" not in cookie.lower()  # public URL is http in tests


def test_secure_cookie_when_public_url_is_https(make_app):
    app = make_app(nproxy__public_url="https://nproxy.example")
    res = app.get("/api/v1/session")
    cookie = next(v for k, v in res.headerlist if k == "Set-Cookie")
    assert "secure" in cookie.lower()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "", "password": PASSWORD}, "email"),
        ({"email": "a@b", "password": PASSWORD}, "email"),
        ({"password": PASSWORD}, "email"),
        ({"email": "x@example.com", "password": "short"}, "password"),
        ({"email": "x@example.com"}, "password"),
        ({"email": 5, "password": PASSWORD}, "email"),
    ],
)
def test_register_validation_errors_change_nothing(api, db, body, field):
    res = api.post("/api/v1/auth/register", body)
    assert res.status_int == 400
    assert res.json["error"]["code"] == "validation_error"
    assert field in res.json["error"]["fields"]
    assert res.json["error"]["message"]
    assert count_users(db) == 0


def test_register_rejects_non_json_and_non_object(api, db):
    res = api.post("/api/v1/auth/register", params="{not json", content_type="application/json")
    assert res.status_int == 400 and res.json["error"]["code"] == "validation_error"
    res = api.post("/api/v1/auth/register", ["a", "b"])
    assert res.status_int == 400 and res.json["error"]["code"] == "validation_error"
    assert count_users(db) == 0


def test_duplicate_email_is_refused(api, db, user_factory):
    user_factory("taken@example.com")
    res = api.register("TAKEN@example.com ")
    assert res.status_int == 400
    assert res.json["error"]["code"] == "validation_error"
    assert res.json["error"]["fields"] == {"email": "taken"}
    assert count_users(db) == 1


def test_password_is_checked_at_eight_characters(api):
    assert api.register("seven@example.com", "1234567").status_int == 400
    assert api.register("eight@example.com", "12345678").status_int == 201


def test_missing_csrf_token_is_refused_and_changes_nothing(app, db):
    res = app.post_json(
        "/api/v1/auth/register", {"email": "x@example.com", "password": PASSWORD}, status="*"
    )
    assert res.status_int == 403
    assert res.json["error"]["code"] == "forbidden"
    assert "CSRF" in res.json["error"]["message"]
    assert count_users(db) == 0


def test_wrong_csrf_token_is_refused(app, db):
    app.get("/api/v1/session")
    res = app.post_json(
        "/api/v1/auth/register",
        {"email": "x@example.com", "password": PASSWORD},
        headers={"X-CSRF-Token": "0" * 32},
        status="*",
    )
    assert res.status_int == 403
    assert count_users(db) == 0


def test_login_and_logout(api, user_factory):
    user_factory("bob@example.com")
    res = api.login("BOB@example.com")
    assert res.status_int == 200
    assert res.json["user"]["email"] == "bob@example.com"
    assert api.get("/api/v1/me").status_int == 200
    assert api.logout().status_int == 204
    res = api.get("/api/v1/me")
    assert res.status_int == 401
    assert res.json["error"]["code"] == "not_authenticated"


def test_wrong_password_and_unknown_email_answer_alike(api, user_factory):
    user_factory("bob@example.com")
    wrong = api.login("bob@example.com", "wrong password!")
    unknown = api.login("nobody@example.com", "wrong password!")
    assert wrong.status_int == unknown.status_int == 401
    assert wrong.json == unknown.json
    assert wrong.json["error"]["code"] == "not_authenticated"
    assert api.get("/api/v1/me").status_int == 401


def test_an_unknown_email_costs_a_password_check_of_the_same_cost(api, user_factory, monkeypatch):
    from argon2 import PasswordHasher

    from nproxy_core.accounts import services

    checked: list[str] = []
    hasher = services._hasher

    class Watching(PasswordHasher):
        def verify(self, hash: str, password: str) -> bool:
            checked.append(hash)
            return hasher.verify(hash, password)

    monkeypatch.setattr(services, "_hasher", Watching.from_parameters(hasher._parameters))
    user_factory("bob@example.com")
    assert api.login("nobody@example.com", "wrong password!").status_int == 401
    # One check, against a hash with the hasher's own parameters: as slow as a wrong password.
    [dummy] = checked
    assert not services._hasher.check_needs_rehash(dummy)
    assert api.login("bob@example.com", "wrong password!").status_int == 401
    assert len(checked) == 2


def test_blocked_user_cannot_log_in(api, user_factory):
    user_factory("blocked@example.com", blocked=True)
    res = api.login("blocked@example.com")
    assert res.status_int == 403
    assert res.json["error"]["code"] == "forbidden"
    assert api.get("/api/v1/me").status_int == 401


def test_blocking_ends_an_open_session(api, db, user_factory):
    user = user_factory("soon-blocked@example.com")
    api.login("soon-blocked@example.com")
    assert api.get("/api/v1/me").status_int == 200
    db.get(User, user.id).is_blocked = True
    db.commit()
    assert api.get("/api/v1/me").status_int == 401


def test_me_needs_login(api):
    res = api.get("/api/v1/me")
    assert res.status_int == 401
    assert res.json == {
        "error": {"code": "not_authenticated", "message": res.json["error"]["message"]}
    }


def _reset_link(outbox) -> str:
    assert outbox, "no mail was sent"
    match = re.search(r"http://localhost/reset-password\?token=([\w-]+)", outbox[-1]["body"])
    assert match, outbox[-1]["body"]
    return match.group(1)


def test_password_reset_by_emailed_link(api, app, db, outbox, user_factory):
    user_factory("reset@example.com")
    res = api.post("/api/v1/auth/password-reset", {"email": "Reset@example.com"})
    assert res.status_int == 202
    token = _reset_link(outbox)
    # Only the hash is stored.
    assert db.scalar(sa.select(PasswordResetToken.token_hash)) != token

    # The page behind the link renders the form.
    page = app.get(f"/reset-password?token={token}")
    assert "Choose a new password" in page.text

    res = api.post(
        "/api/v1/auth/password-reset/confirm", {"token": token, "password": "a brand new one"}
    )
    assert res.status_int == 204
    assert api.login("reset@example.com").status_int == 401
    assert api.login("reset@example.com", "a brand new one").status_int == 200

    # Single use.
    again = api.post(
        "/api/v1/auth/password-reset/confirm", {"token": token, "password": "another one!"}
    )
    assert again.status_int == 400
    assert again.json["error"]["code"] == "validation_error"


def test_reset_answers_the_same_for_unknown_email(api, outbox, db):
    known_and_unknown = []
    for email in ("nobody@example.com",):
        known_and_unknown.append(api.post("/api/v1/auth/password-reset", {"email": email}))
    assert known_and_unknown[0].status_int == 202
    assert outbox == []
    assert db.scalar(sa.select(sa.func.count()).select_from(PasswordResetToken)) == 0


def test_reset_response_does_not_reveal_the_account(api, user_factory):
    user_factory("known@example.com")
    known = api.post("/api/v1/auth/password-reset", {"email": "known@example.com"})
    unknown = api.post("/api/v1/auth/password-reset", {"email": "unknown@example.com"})
    assert known.status_int == unknown.status_int == 202
    assert known.json == unknown.json


def test_expired_reset_token_is_refused(api, db, outbox, user_factory):
    import datetime as dt

    user_factory("late@example.com")
    api.post("/api/v1/auth/password-reset", {"email": "late@example.com"})
    token = _reset_link(outbox)
    row = db.scalar(sa.select(PasswordResetToken))
    row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db.commit()
    res = api.post(
        "/api/v1/auth/password-reset/confirm", {"token": token, "password": "new pass 123"}
    )
    assert res.status_int == 400
    assert api.login("late@example.com").status_int == 200


def test_reset_with_bad_token_or_short_password(api, outbox, user_factory):
    user_factory("r@example.com")
    api.post("/api/v1/auth/password-reset", {"email": "r@example.com"})
    token = _reset_link(outbox)
    bad = api.post(
        "/api/v1/auth/password-reset/confirm", {"token": "nope", "password": "long enough"}
    )
    assert bad.status_int == 400 and bad.json["error"]["fields"] == {"token": "invalid"}
    short = api.post("/api/v1/auth/password-reset/confirm", {"token": token, "password": "short"})
    assert short.status_int == 400 and short.json["error"]["fields"] == {"password": "too_short"}
    # The token survived the refused attempt.
    ok = api.post(
        "/api/v1/auth/password-reset/confirm", {"token": token, "password": "long enough"}
    )
    assert ok.status_int == 204


def test_reset_logs_out_other_sessions(app, make_app, user_factory, outbox):
    user_factory("multi@example.com")
    first = ApiClient(app)
    first.login("multi@example.com")
    assert first.get("/api/v1/me").status_int == 200
    first.post("/api/v1/auth/password-reset", {"email": "multi@example.com"})
    token = _reset_link(outbox)
    second = ApiClient(make_app())
    second.post("/api/v1/auth/password-reset/confirm", {"token": token, "password": "changed it!"})
    assert first.get("/api/v1/me").status_int == 401
