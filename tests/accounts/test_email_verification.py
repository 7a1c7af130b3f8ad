"""Verified email addresses (DESIGN 4.12): registration mails a link from the queue, the link
verifies its own account's address once within 24 hours, a new link replaces the older ones,
resending is limited per account, and no token value at all gets an error of the server."""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any

import pytest
import sqlalchemy as sa
import webtest

from apiclient import ApiClient
from nproxy_core.accounts.models import EmailVerificationToken, User

SUBJECT = "Verify your nproxy email address"
LINK = re.compile(r"http://localhost/verify-email\?token=([\w-]+)")


def verification_mails(outbox: Any, to: str) -> list[dict[str, str]]:
    return [m for m in outbox if m["subject"] == SUBJECT and m["to"] == to]


def latest_link(outbox: Any, to: str) -> str:
    mails = verification_mails(outbox, to)
    assert mails, f"no verification mail to {to}: {list(outbox)}"
    match = LINK.search(mails[-1]["body"])
    assert match, mails[-1]["body"]
    return match.group(0)


def token_of(link: str) -> str:
    return link.split("token=", 1)[1]


def outcome(page: webtest.TestResponse) -> str:
    return page.html.select_one("#verify-email")["data-outcome"]


def send_forms(page: webtest.TestResponse) -> list[webtest.Form]:
    """The page's "send a new link" forms (the top bar has its own log-out form)."""
    return [f for f in page.forms.values() if f.action == "/verify-email"]


def client(app: webtest.TestApp) -> ApiClient:
    """Another browser on the same app (its own cookies)."""
    return ApiClient(webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"}))


def verified_at(db: Any, email: str) -> dt.datetime | None:
    db.expire_all()
    return db.scalar(sa.select(User.email_verified_at).where(User.email == email))


def test_registration_mails_a_link_that_verifies_the_address(api, db, outbox):
    assert api.register("new@example.com").status_int == 201
    assert api.get("/api/v1/me").json["email_verified"] is False
    # Sent from the queue once the registration committed, to the new address only.
    [mail] = verification_mails(outbox, "new@example.com")
    assert "24 hours" in mail["body"]
    assert "&amp;" not in mail["body"]
    link = latest_link(outbox, "new@example.com")

    page = api.get(link)
    assert page.status_int == 200
    assert outcome(page) == "verified"
    assert "new@example.com" in page.text
    assert page.html.find("a", href="/dashboard") is not None
    assert api.get("/api/v1/me").json["email_verified"] is True
    assert verified_at(db, "new@example.com") is not None
    # Only the hash of the token is kept.
    row = db.scalar(sa.select(EmailVerificationToken))
    assert token_of(link) not in (row.token_hash, row.email)


def test_the_registration_form_sends_the_link_too(app, outbox):
    form = app.get("/register").forms[0]
    form["email"] = "form@example.com"
    form["password"] = "long enough pw"
    assert form.submit().status_int == 303
    assert len(verification_mails(outbox, "form@example.com")) == 1


def test_accounts_made_by_an_admin_get_no_mail(outbox, user_factory):
    user_factory("made@example.com")
    assert outbox == []


def test_a_link_works_once(api, db, outbox):
    api.register("once@example.com")
    link = latest_link(outbox, "once@example.com")
    assert api.get(link).status_int == 200
    first = verified_at(db, "once@example.com")

    again = api.get(link)
    assert again.status_int == 400
    assert outcome(again) == "used"
    assert "already been used" in again.text
    assert "there is nothing more to do" in again.text
    assert verified_at(db, "once@example.com") == first


@pytest.mark.parametrize(("age_hours", "accepted"), [(23.9, True), (24.1, False)])
def test_a_link_is_valid_for_24_hours(api, db, outbox, age_hours, accepted):
    api.register("day@example.com")
    link = latest_link(outbox, "day@example.com")
    row = db.scalar(sa.select(EmailVerificationToken))
    assert abs(row.expires_at - row.created_at - dt.timedelta(hours=24)) < dt.timedelta(seconds=5)
    row.created_at -= dt.timedelta(hours=age_hours)
    row.expires_at -= dt.timedelta(hours=age_hours)
    db.commit()

    page = api.get(link)
    if accepted:
        assert outcome(page) == "verified"
        assert api.get("/api/v1/me").json["email_verified"] is True
    else:
        assert page.status_int == 400
        assert outcome(page) == "expired"
        assert "expired" in page.text
        assert api.get("/api/v1/me").json["email_verified"] is False
        # Logged in: a button sends a new link from the page itself.
        [form] = send_forms(page)
        assert form.submit().status_int == 303
        assert latest_link(outbox, "day@example.com") != link


def test_a_new_link_replaces_the_older_ones(api, db, outbox):
    api.register("twice@example.com")
    first = latest_link(outbox, "twice@example.com")
    res = api.post("/api/v1/auth/verify-email")
    assert (res.status_int, res.json) == (202, {"sent": True})
    second = latest_link(outbox, "twice@example.com")
    assert second != first
    assert db.scalar(sa.select(sa.func.count()).select_from(EmailVerificationToken)) == 1

    old = api.get(first)
    assert old.status_int == 400
    assert outcome(old) == "invalid"
    assert "replaced by a newer one" in old.text
    assert verified_at(db, "twice@example.com") is None
    assert outcome(api.get(second)) == "verified"


def test_a_link_verifies_its_own_account_whoever_opens_it(app, db, outbox):
    alice, bob = client(app), client(app)
    alice.register("alice@example.com")
    bob.register("bob@example.com")
    link = latest_link(outbox, "alice@example.com")

    page = bob.get(link)
    assert outcome(page) == "verified"
    assert "alice@example.com" in page.text
    assert "You are logged in as bob@example.com" in page.text
    assert bob.get("/api/v1/me").json["email_verified"] is False
    assert alice.get("/api/v1/me").json["email_verified"] is True
    assert verified_at(db, "bob@example.com") is None


def test_a_logged_out_visitor_can_verify_with_the_link(app, api, outbox):
    api.register("out@example.com")
    link = latest_link(outbox, "out@example.com")
    api.logout()
    page = api.get(link)
    assert outcome(page) == "verified"
    # A refused link offers to log in, not a button that needs a session.
    refused = api.get(link)
    assert outcome(refused) == "used"
    assert send_forms(refused) == []
    assert refused.html.find("a", href=re.compile(r"^/login")) is not None


def test_racing_openings_of_one_link_verify_once(app, db, outbox):
    ApiClient(app).register("race@example.com")
    link = latest_link(outbox, "race@example.com")
    browsers = [client(app) for _ in range(6)]
    barrier = threading.Barrier(len(browsers))
    answers: list[Any] = [None] * len(browsers)

    def open_link(n: int) -> None:
        barrier.wait()
        answers[n] = browsers[n].get(link)

    threads = [threading.Thread(target=open_link, args=(n,)) for n in range(len(browsers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcome(a) for a in answers) == ["used"] * 5 + ["verified"]


def test_a_verified_account_gets_200_and_no_mail(api, db, outbox):
    api.register("done@example.com")
    api.get(latest_link(outbox, "done@example.com"))
    before = len(outbox)
    res = api.post("/api/v1/auth/verify-email")
    assert (res.status_int, res.json) == (200, {"verified": True})
    assert len(outbox) == before


def test_resending_is_limited_per_account_by_default_to_5_an_hour(app, api, outbox):
    api.register("limit@example.com")  # the first of the five
    for _ in range(4):
        assert api.post("/api/v1/auth/verify-email").status_int == 202
    res = api.post("/api/v1/auth/verify-email")
    assert res.status_int == 429
    assert res.json["error"]["code"] == "rate_limited"
    assert int(res.headers["Retry-After"]) > 0
    assert len(verification_mails(outbox, "limit@example.com")) == 5
    # The latest link still works; another account is not touched by this one's limit.
    assert outcome(api.get(latest_link(outbox, "limit@example.com"))) == "verified"
    other = client(app)
    other.register("other@example.com")
    assert other.post("/api/v1/auth/verify-email").status_int == 202


def test_the_limit_is_a_setting(make_app, outbox):
    api = ApiClient(make_app(nproxy__ratelimit__verify_email="1/hour"))
    api.register("one@example.com")
    assert api.post("/api/v1/auth/verify-email").status_int == 429


def test_sending_needs_a_session_and_the_csrf_token(app, api, outbox, user_factory):
    res = api.post("/api/v1/auth/verify-email")
    assert (res.status_int, res.json["error"]["code"]) == (401, "not_authenticated")
    user_factory("csrf@example.com")
    api.login("csrf@example.com")
    res = app.post("/api/v1/auth/verify-email", status="*")
    assert (res.status_int, res.json["error"]["code"]) == (403, "forbidden")
    # The page's button: a visitor is sent to log in, and comes back to a page that offers
    # to send the link.
    visitor = client(app)
    res = visitor.app.post("/verify-email", {"csrf_token": visitor.csrf()}, status=303)
    assert res.location == "http://localhost/login?next=%2Fverify-email"
    assert outbox == []
    page = app.get("/verify-email")
    assert (page.status_int, outcome(page)) == (200, "ask")
    assert "csrf@example.com" in page.text
    [form] = send_forms(page)
    assert form.submit().status_int == 303
    assert len(verification_mails(outbox, "csrf@example.com")) == 1


def test_the_dashboard_shows_the_state_and_sends_a_link(app, db, outbox, user_factory):
    api = ApiClient(app)
    user_factory("dash@example.com")  # made by an admin: no mail yet
    api.login("dash@example.com")
    page = app.get("/dashboard")
    assert page.html.select_one("#account")["data-email-verified"] == "false"
    assert "Email not verified yet" in page.text
    [form] = send_forms(page)
    sent = form.submit()
    assert sent.status_int == 303
    assert sent.location.endswith("/dashboard?done=verification-sent")
    assert "We sent a verification link to dash@example.com" in sent.follow().text

    app.get(latest_link(outbox, "dash@example.com"))
    page = app.get("/dashboard")
    assert page.html.select_one("#account")["data-email-verified"] == "true"
    assert "Email verified" in page.text
    assert send_forms(page) == []
    # A stale button press (another tab) sends nothing and says so.
    again = app.post("/verify-email", {"csrf_token": api.csrf()})
    assert again.location.endswith("/dashboard?done=verified")
    assert len(verification_mails(outbox, "dash@example.com")) == 1


def test_the_form_says_when_the_limit_is_reached(make_app, outbox, user_factory):
    app = make_app(nproxy__ratelimit__verify_email="1/hour")
    api = ApiClient(app)
    user_factory("busy@example.com")
    api.login("busy@example.com")
    assert app.post("/verify-email", {"csrf_token": api.csrf()}).status_int == 303
    page = app.post("/verify-email", {"csrf_token": api.csrf()}, status=429)
    assert page.headers["Retry-After"]
    assert "check your inbox" in page.html.select_one("#form-error").text


@pytest.mark.parametrize(
    "query",
    [
        "token=",
        "token=abc",
        "token=" + "A" * 43,
        "token=" + "A" * 100_000,
        "token=%ff%fe",
        "token=%ed%a0%80",
        "token=a%00b" + "A" * 40,
        "token=%",
        "token=%zz",
        "token=a&token=b",
        "token=%E2%9C%93" * 20,
        "token=..%2F..%2Fetc%2Fpasswd",
        "token=%20" + "A" * 43,
    ],
)
def test_no_token_value_gets_an_error_of_the_server(api, query):
    api.register("fuzz@example.com")
    page = api.get(f"/verify-email?{query}")
    assert page.status_int == 400, page.text[:300]
    if page.content_type == "text/html" and 'id="verify-email"' in page.text:
        assert outcome(page) == "invalid"
    assert api.get("/api/v1/me").json["email_verified"] is False


def test_a_changed_address_is_no_longer_verified_and_old_links_stop(api, db, outbox):
    api.register("before@example.com")
    link = latest_link(outbox, "before@example.com")
    user = db.scalar(sa.select(User))
    user.email = "after@example.com"
    db.commit()
    assert outcome(api.get(link)) == "invalid"
    assert verified_at(db, "after@example.com") is None

    api.post("/api/v1/auth/verify-email")
    assert outcome(api.get(latest_link(outbox, "after@example.com"))) == "verified"
    user = db.scalar(sa.select(User))
    user.email = "after@example.com"  # the same address: still verified
    assert user.email_verified
    user.email = "again@example.com"
    assert user.email_verified_at is None
    db.commit()
    assert verified_at(db, "again@example.com") is None
