"""DESIGN 4.7: the admin is for admins only. Every page answers an admin, is a 404 for a
logged-in non-admin (as if it did not exist) and sends an anonymous visitor to log in; every
action needs the CSRF token, and a refused request changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import audit_rows, make_generation, make_payment
from nproxy_core.accounts.models import User
from nproxy_core.audit import Actor, Surface
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.telegram.models import TelegramAdmin
from nproxy_core.wiring import find_service

PAGES = [
    "/admin",
    "/admin/plans",
    "/admin/plans/monthly",
    "/admin/pricing",
    "/admin/packs",
    "/admin/health",
    "/admin/users",
    "/admin/users?q=example",
    "/admin/users/{user}",
    "/admin/payments",
    "/admin/payments?state=review",
    "/admin/payments/{payment}",
    "/admin/generations",
    "/admin/generations?status=succeeded",
    "/admin/generations/{generation}",
    "/admin/keys",
    "/admin/keys/{key}",
    "/admin/proxies",
    "/admin/audit",
    "/admin/audit?action=key.add",
    "/admin/telegram",
]

ACTIONS = [
    ("/admin/plans/monthly/edit", {"units": "5"}),
    (
        "/admin/pricing/set",
        {"provider": "demo", "model": "demo-image-1", "resolution": "square", "units": "2"},
    ),
    ("/admin/users/{user}/block", {}),
    ("/admin/users/{user}/unblock", {}),
    ("/admin/users/{user}/role", {"role": "admin"}),
    ("/admin/users/{user}/grant-cycle", {"reason": "goodwill"}),
    ("/admin/payments/{payment}/resolve", {"decision": "activate", "note": "checked"}),
    ("/admin/payments/notifications/{notification}/dismiss", {"note": "checked"}),
    ("/admin/keys", {"provider": "demo", "secret": "demo-secret-new-1"}),
    ("/admin/keys/{key}/edit", {"label": "renamed"}),
    ("/admin/keys/{key}/restore", {}),
    ("/admin/keys/{key}/disable", {}),
    ("/admin/keys/{key}/test", {}),
    ("/admin/proxies", {"url": "http://127.0.0.1:3128"}),
    ("/admin/proxies/{proxy}/enable", {}),
    ("/admin/proxies/{proxy}/disable", {}),
    ("/admin/proxies/{proxy}/test", {}),
    ("/admin/telegram/{telegram}/revoke", {}),
]


@pytest.fixture
def world(db: Any, app: Any, user_factory: Any, admin_user: Any) -> dict[str, Any]:
    """One of everything the admin shows, by id."""
    from nproxy_core.billing.models import PaymentNotification

    user = user_factory("plain@example.com")
    payment = make_payment(db, user, review="partially paid")
    generation = make_generation(db, user)
    actor = Actor("tests", Surface.CLI)
    secrets = find_service(app.app.registry, ISecretBox)
    key = pool.add_key(
        db,
        secrets,
        provider="demo",
        secret="demo-key-world",
        enabled_providers=["demo"],
        actor=actor,
    )
    proxy = pool.add_proxy(db, "http://127.0.0.1:1", actor=actor)
    note = PaymentNotification(
        processor="demo",
        source="webhook",
        status="finished",
        raw={},
        result="unknown_order",
        needs_review=True,
        order_id="nope",
    )
    db.add(note)
    db.add(TelegramAdmin(telegram_id=4242, chat_id=4242, username="ops", paired_by="tests"))
    db.commit()
    return {
        "user": user.id,
        "payment": payment.id,
        "generation": generation.id,
        "key": key.id,
        "proxy": proxy.id,
        "notification": note.id,
        "telegram": 4242,
    }


@pytest.mark.parametrize("page", PAGES)
def test_an_admin_sees_every_page(admin, world, page):
    res = admin.get(page.format(**world))
    assert res.status_int == 200, res.text[:2000]
    assert res.html.select_one("nav.admin-nav") is not None


@pytest.mark.parametrize("page", PAGES)
def test_a_logged_in_user_who_is_not_an_admin_gets_404_on_every_page(browse, world, page):
    user = browse().login("plain@example.com")
    res = user.get(page.format(**world))
    assert res.status_int == 404
    assert "admin-nav" not in res.text


@pytest.mark.parametrize("page", PAGES)
def test_an_anonymous_visitor_is_sent_to_log_in(browse, world, page):
    url = page.format(**world)
    res = browse().get(url)
    assert res.status_int == 303
    assert res.location.startswith("http://localhost/login?next=")


@pytest.mark.parametrize(("action", "data"), ACTIONS)
def test_no_action_works_without_the_csrf_token_and_nothing_changes(admin, db, world, action, data):
    before = audit_rows(db)
    res = admin.post(action.format(**world), data, csrf=False)
    assert res.status_int == 403
    assert "CSRF" in res.text
    assert audit_rows(db) == before


@pytest.mark.parametrize(("action", "data"), ACTIONS)
def test_no_action_answers_a_user_who_is_not_an_admin(browse, db, world, action, data):
    user = browse().login("plain@example.com")
    before = audit_rows(db)
    res = user.post(action.format(**world), data)
    assert res.status_int == 404
    assert audit_rows(db) == before
    assert db.scalar(sa.select(User.role).where(User.id == world["user"])) == "user"


@pytest.mark.parametrize(("action", "data"), ACTIONS)
def test_no_action_answers_an_anonymous_visitor(browse, db, world, action, data):
    before = audit_rows(db)
    res = browse().post(action.format(**world), data)
    assert res.status_int == 303 and "/login" in res.location
    assert audit_rows(db) == before


def test_a_blocked_admin_is_an_anonymous_visitor(browse, db, admin_user, world):
    session = browse().login(admin_user.email)
    db.execute(sa.update(User).where(User.id == admin_user.id).values(is_blocked=True))
    db.commit()
    res = session.get("/admin")
    assert res.status_int == 303 and "/login" in res.location


def test_the_site_shows_admins_the_way_in_and_nobody_else(admin, browse, world):
    assert admin.get("/dashboard").html.find("a", string="Admin") is not None
    user = browse().login("plain@example.com")
    assert user.get("/dashboard").html.find("a", string="Admin") is None


@pytest.mark.parametrize(
    "url",
    [
        "/admin/users/abc",
        "/admin/users/999999",
        "/admin/payments/0",
        "/admin/keys/x",
        "/admin/generations/not-a-uuid",
        "/admin/generations/00000000-0000-0000-0000-000000000000",
    ],
)
def test_unknown_or_malformed_ids_are_404(admin, world, url):
    assert admin.get(url).status_int == 404


@pytest.mark.parametrize(
    "url",
    [
        "/admin/users?after=%%%",
        "/admin/generations?after=bm9wZQ",
        "/admin/audit?after=!!",
        "/admin/payments?state=bogus",
        "/admin/generations?status=bogus",
        "/admin/generations?since=yesterday",
        "/admin/generations?user=nobody@example.com",
    ],
)
def test_bad_filters_and_page_links_say_what_is_wrong_with_a_400(admin, world, url):
    res = admin.get(url)
    assert res.status_int == 400
    assert res.html.select_one("p.alert.error").get_text().strip()
