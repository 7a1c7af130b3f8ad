"""``/admin/referrals``: referrers, referred accounts and rewards, newest first, keyset pages,
a referrer filter; admins only, linked in the admin's navigation."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from admin_support import AdminBrowser
from nproxy_core.db import utcnow
from nproxy_core.referrals.models import Referral
from referrals.conftest import finish
from referrals.test_referrals import refer


def test_admins_only(ref_app, user_factory):
    user_factory("ada@example.com")
    assert AdminBrowser(ref_app).get("/admin/referrals").status_int in (302, 303)
    plain = AdminBrowser(ref_app).login("ada@example.com")
    assert plain.get("/admin/referrals").status_int == 404


def test_lists_referrals_with_their_rewards(ref_app, db, user_factory, make_payment, plan_terms):
    user_factory("boss@example.com", admin=True)
    ada = user_factory("ada@example.com")
    paid, waiting = user_factory("paid@example.com"), user_factory("waiting@example.com")
    refer(db, ada, paid)
    refer(db, ada, waiting)
    payment = make_payment(paid)
    finish(db, plan_terms, payment)
    admin = AdminBrowser(ref_app).login("boss@example.com")
    page = admin.get("/admin/referrals")
    assert page.status_int == 200
    nav = [a.get_text(strip=True) for a in page.html.select("nav.admin-nav a")]
    assert "Referrals" in nav
    rows = page.html.select("#referral-list tbody tr")
    assert [r["data-referred"] for r in rows] == [str(waiting.id), str(paid.id)]
    rewarded = page.html.select_one(f'tr[data-referred="{paid.id}"]')
    assert rewarded["data-rewarded"] == "true"
    assert "20 units" in rewarded.text and f"payment {payment.id}" in rewarded.text
    assert "not paid yet" in page.html.select_one(f'tr[data-referred="{waiting.id}"]').text
    totals = page.html.select_one("#referral-totals").get_text(" ", strip=True)
    assert "Referred accounts 2" in totals and "Units given (kept) 20" in totals


def test_pages_by_keyset_and_filters_by_referrer(ref_app, db, user_factory):
    user_factory("boss@example.com", admin=True)
    ada, bob = user_factory("ada@example.com"), user_factory("bob@example.com")
    now = utcnow()
    people = [user_factory() for _ in range(55)]
    for i, person in enumerate(people):
        db.add(
            Referral(
                referred_id=person.id,
                referrer_id=ada.id if i % 2 else bob.id,
                via="web",
                created_at=now - dt.timedelta(minutes=i),
            )
        )
    db.commit()
    admin = AdminBrowser(ref_app).login("boss@example.com")
    first = admin.get("/admin/referrals")
    shown = [r["data-referred"] for r in first.html.select("#referral-list tbody tr")]
    assert len(shown) == 50
    more = first.html.select_one("nav.pager a[rel=next]")
    second = admin.get(more["href"])
    rest = [r["data-referred"] for r in second.html.select("#referral-list tbody tr")]
    assert len(rest) == 5 and not set(rest) & set(shown)
    assert shown + rest == [str(p.id) for p in people]
    only_ada = admin.get("/admin/referrals?referrer=ada@example.com")
    ids = {r["data-referred"] for r in only_ada.html.select("#referral-list tbody tr")}
    assert ids == {str(p.id) for i, p in enumerate(people) if i % 2}
    assert db.scalar(sa.select(sa.func.count()).select_from(Referral)) == 55


def test_bad_filter_and_cursor_are_named(ref_app, user_factory):
    user_factory("boss@example.com", admin=True)
    admin = AdminBrowser(ref_app).login("boss@example.com")
    page = admin.get("/admin/referrals?referrer=nobody@example.com")
    assert page.status_int == 400
    assert "no user 'nobody@example.com'" in page.html.select_one("p.alert.error").text
    damaged = admin.get("/admin/referrals?after=%%%")
    assert damaged.status_int == 400 and "page link is damaged" in damaged.text
