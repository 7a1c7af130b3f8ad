"""The account's API keys page: make a key (its secret shown on that answer only), see its
usage chart, revoke it."""

from __future__ import annotations

import re


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_the_page_makes_shows_once_and_revokes_a_key(app, customer_factory):
    alice = customer_factory(app)
    browser = alice.api.app
    page = browser.get("/account/api-keys")
    assert "No keys yet" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "curl http://localhost/v1/generate" in page.text

    made = browser.post("/account/api-keys", {"name": "laptop", "csrf_token": csrf_of(page)})
    secret = re.search(r'id="new-key-secret">(npx_[^<]+)<', made.text).group(1)
    assert "shown <strong>only once</strong>" in made.text
    assert made.headers["Cache-Control"] == "no-store"

    again = browser.get("/account/api-keys")
    assert secret not in again.text
    assert f"<code>{secret[:12]}…</code>" in again.text
    assert "0 images · 0 failed" in again.text
    assert 'role="img"' in again.text  # the usage chart

    key_id = re.search(r'data-key-id="([^"]+)"', again.text).group(1)
    revoked = browser.post(
        f"/account/api-keys/{key_id}/revoke", {"csrf_token": csrf_of(again)}, status=303
    ).follow()
    assert "was revoked" in revoked.text
    assert secret[:12] not in revoked.text


def test_the_page_says_why_a_key_was_refused(app, customer_factory):
    alice = customer_factory(app)
    page = alice.api.app.get("/account/api-keys")
    refused = alice.api.app.post(
        "/account/api-keys", {"name": "   ", "csrf_token": csrf_of(page)}, status=400
    )
    assert "Give the key a name." in refused.text


def test_the_page_needs_a_login(app):
    answer = app.get("/account/api-keys", status=303)
    assert "/login" in answer.headers["Location"]
