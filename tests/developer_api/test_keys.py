"""API keys (DESIGN 4.10): made and listed by their owner, the secret shown once and stored only
as a keyed hash, at most 10 live, revoked keys refused at once."""

from __future__ import annotations

import re

import sqlalchemy as sa

from nproxy_core.developer_api.models import ApiKey


def test_a_key_is_shown_once_listed_by_its_prefix_and_stored_only_as_a_hash(
    app, customer_factory, db
):
    alice = customer_factory(app)
    created = alice.api.post("/api/v1/api-keys", {"name": "  my   app "})
    assert created.status_int == 201
    secret = created.json["key"]
    assert re.fullmatch(r"npx_[A-Za-z0-9_-]{40}", secret)
    assert created.json["name"] == "my app"
    assert created.json["prefix"] == secret[:12]
    assert created.headers["Cache-Control"] == "no-store"

    listed = alice.api.get("/api/v1/api-keys").json["api_keys"]
    assert listed == [
        {
            "id": created.json["id"],
            "name": "my app",
            "prefix": secret[:12],
            "created_at": listed[0]["created_at"],
            "last_used_at": None,
        }
    ]
    assert secret not in alice.api.get("/api/v1/api-keys").text
    row = db.scalar(sa.select(ApiKey))
    assert secret not in (row.secret_hash, row.prefix) and len(row.secret_hash) == 64


def test_keys_need_a_name_and_a_login_and_csrf(app, api, customer_factory):
    assert api.get("/api/v1/api-keys").status_int == 401
    alice = customer_factory(app)
    for body in ({}, {"name": ""}, {"name": 5}, {"name": "x" * 101}, {"name": "a\x00b"}):
        answer = alice.api.post("/api/v1/api-keys", body)
        assert answer.status_int == 400, body
        assert "name" in answer.json["error"]["fields"]
    no_csrf = alice.api.app.post_json("/api/v1/api-keys", {"name": "x"}, status="*")
    assert no_csrf.status_int == 403


def test_at_most_ten_live_keys_and_a_revoked_one_frees_its_place(app, customer_factory):
    alice = customer_factory(app)
    ids = [alice.api.post("/api/v1/api-keys", {"name": f"k{n}"}).json["id"] for n in range(10)]
    refused = alice.api.post("/api/v1/api-keys", {"name": "eleventh"})
    assert refused.status_int == 409
    assert "10" in refused.json["error"]["message"]
    token = alice.api.csrf()
    assert (
        alice.api.app.delete(
            f"/api/v1/api-keys/{ids[0]}", headers={"X-CSRF-Token": token}
        ).status_int
        == 204
    )
    assert alice.api.post("/api/v1/api-keys", {"name": "eleventh"}).status_int == 201
    assert len(alice.api.get("/api/v1/api-keys").json["api_keys"]) == 10


def test_nobody_revokes_another_users_key(app, customer_factory):
    alice, mallory = customer_factory(app), customer_factory(app)
    key_id = alice.api.post("/api/v1/api-keys", {"name": "mine"}).json["id"]
    answer = mallory.api.app.delete(
        f"/api/v1/api-keys/{key_id}", headers={"X-CSRF-Token": mallory.api.csrf()}, status="*"
    )
    assert answer.status_int == 404
    assert len(alice.api.get("/api/v1/api-keys").json["api_keys"]) == 1
