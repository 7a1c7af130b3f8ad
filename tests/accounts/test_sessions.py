"""Sessions end on the server (DESIGN 9): a copied cookie stops working when its session logs
out; "log out everywhere" ends them all; a password change ends every other one."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import sqlalchemy as sa
import webtest

from apiclient import PASSWORD, ApiClient
from nproxy_core.accounts import sessions
from nproxy_core.accounts.models import UserSession
from nproxy_core.db import utcnow


def browser(app: webtest.TestApp, ip: str = "127.0.0.1") -> ApiClient:
    """Another browser on the same app: a cookie jar of its own."""
    return ApiClient(
        webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost", "REMOTE_ADDR": ip})
    )


def copy_of_cookie(source: ApiClient, app: webtest.TestApp) -> ApiClient:
    """What an attacker holds after stealing the session cookie."""
    thief = browser(app, ip="10.9.9.9")
    for cookie in source.app.cookiejar:
        thief.app.set_cookie(cookie.name, cookie.value)
    return thief


def form_token(page: webtest.TestResponse) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_a_cookie_copied_before_api_logout_stops_working(app, user_factory):
    user_factory("copied@example.com")
    owner = browser(app)
    assert owner.login("copied@example.com").status_int == 200
    thief = copy_of_cookie(owner, app)
    assert thief.get("/api/v1/me").status_int == 200
    assert owner.logout().status_int == 204
    assert thief.get("/api/v1/me").status_int == 401
    assert owner.get("/api/v1/me").status_int == 401


def test_a_cookie_copied_before_the_logout_form_stops_working(app, user_factory):
    user_factory("form@example.com")
    owner = browser(app)
    owner.login("form@example.com")
    thief = copy_of_cookie(owner, app)
    page = owner.app.get("/dashboard")
    owner.app.post("/logout", {"csrf_token": form_token(page)}, status=303)
    assert thief.get("/api/v1/me").status_int == 401
    assert thief.app.get("/dashboard", status=303).location.startswith("http://localhost/login")


def test_logging_out_one_browser_leaves_the_others_logged_in(app, user_factory):
    user_factory("two@example.com")
    laptop, phone = browser(app), browser(app)
    laptop.login("two@example.com")
    phone.login("two@example.com")
    laptop.logout()
    assert laptop.get("/api/v1/me").status_int == 401
    assert phone.get("/api/v1/me").status_int == 200


def test_log_out_everywhere_ends_every_session_and_every_copy(app, db, user_factory):
    user = user_factory("everywhere@example.com")
    laptop, phone = browser(app), browser(app, ip="10.0.0.5")
    laptop.login("everywhere@example.com")
    phone.login("everywhere@example.com")
    thief = copy_of_cookie(phone, app)
    page = laptop.app.get("/dashboard")
    assert "Log out everywhere" in page.text
    answer = laptop.app.post("/logout-everywhere", {"csrf_token": form_token(page)}, status=303)
    assert "ended=everywhere" in answer.location
    for client in (laptop, phone, thief):
        assert client.get("/api/v1/me").status_int == 401
    assert "logged out on every device" in laptop.app.get(answer.location).text
    live = db.scalar(
        sa.select(sa.func.count())
        .select_from(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    )
    assert live == 0


def test_log_out_everywhere_needs_the_csrf_token(app, user_factory):
    user_factory("csrf-everywhere@example.com")
    laptop = browser(app)
    laptop.login("csrf-everywhere@example.com")
    laptop.app.post("/logout-everywhere", {}, status=403)
    assert laptop.get("/api/v1/me").status_int == 200


def test_a_password_change_keeps_this_browser_and_ends_the_others(app, user_factory):
    user_factory("change@example.com")
    laptop, phone = browser(app), browser(app)
    laptop.login("change@example.com")
    phone.login("change@example.com")
    page = laptop.app.get("/account/password")
    answer = laptop.app.post(
        "/account/password",
        {
            "csrf_token": form_token(page),
            "current_password": PASSWORD,
            "password": "a brand new password",
        },
        status=303,
    )
    assert answer.location.endswith("/dashboard?done=password")
    assert "Every other browser was logged out" in laptop.app.get(answer.location).text
    assert laptop.get("/api/v1/me").status_int == 200
    assert phone.get("/api/v1/me").status_int == 401
    assert browser(app).login("change@example.com").status_int == 401
    assert browser(app).login("change@example.com", "a brand new password").status_int == 200


def test_a_wrong_current_password_changes_nothing(app, user_factory):
    user_factory("keep@example.com")
    laptop, phone = browser(app), browser(app)
    laptop.login("keep@example.com")
    phone.login("keep@example.com")
    page = laptop.app.get("/account/password")
    answer = laptop.app.post(
        "/account/password",
        {
            "csrf_token": form_token(page),
            "current_password": "not it!!",
            "password": "whatever 123",
        },
        status=400,
    )
    assert "current password is not right" in answer.text
    assert phone.get("/api/v1/me").status_int == 200
    assert browser(app).login("keep@example.com").status_int == 200


def test_the_dashboard_lists_the_live_sessions(app, user_factory):
    user_factory("list@example.com")
    laptop = browser(app)
    laptop.app.extra_environ["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
    )
    laptop.login("list@example.com")
    phone = browser(app, ip="10.0.0.7")
    phone.app.extra_environ["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Version/17.0 Safari/604.1"
    )
    phone.login("list@example.com")
    text = laptop.app.get("/dashboard").text
    assert "Chrome on Linux" in text
    assert "Safari on iPhone" in text
    assert "10.0.0.7" in text
    assert text.count("this browser") == 1
    phone.logout()
    assert "Safari on iPhone" not in laptop.app.get("/dashboard").text


def test_old_session_rows_are_pruned_and_recent_ones_kept(db, user_factory):
    user = user_factory("prune@example.com")
    now = utcnow()
    for days, ended in ((100, True), (100, False), (10, True), (1, False)):
        moment = now - dt.timedelta(days=days)
        db.add(
            UserSession(
                user_id=user.id,
                token_hash=f"{days}-{ended}".ljust(64, "x"),
                created_at=moment,
                last_seen_at=moment,
                ended_at=moment if ended else None,
                ip="10.0.0.1",
                user_agent="",
            )
        )
    db.commit()
    assert sessions.prune_sessions(db) == 2
    db.commit()
    assert db.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 2


def test_a_session_idle_longer_than_the_limit_is_refused(make_app, db, user_factory: Any):
    app = make_app()
    user_factory("idle@example.com")
    client = browser(app)
    client.login("idle@example.com")
    db.execute(sa.update(UserSession).values(last_seen_at=utcnow() - dt.timedelta(days=15)))
    db.commit()
    assert client.get("/api/v1/me").status_int == 401
