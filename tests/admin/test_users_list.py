"""The users list (DESIGN 4.7): each user's plan, paid-until and units used this cycle;
filters by the plan of the running cycle and by paid access expiring within 7 days, paged by
keyset with the filters kept."""

from __future__ import annotations

import datetime as dt
from typing import Any

from money_support import cycle, paid_cycle, plan
from nproxy_core.db import utcnow

DAY = dt.timedelta(days=1)


def listed(res: Any) -> dict[str, Any]:
    assert res.status_int == 200, res.text[:500]
    return {
        tr.select_one("td[data-label=Email] a").get_text(): tr
        for tr in res.html.select("#users tr[data-user]")
    }


def test_each_user_shows_plan_paid_until_and_units_used_this_cycle(admin, db, user_factory):
    now = utcnow()
    monthly = plan(db, "monthly")
    subscriber = user_factory("sub@example.com")
    paid_cycle(db, subscriber, monthly, starts=now - 5 * DAY, ends=now + 25 * DAY, used=12)
    queued = now + 55 * DAY
    cycle(db, subscriber, monthly, starts=now + 25 * DAY, ends=queued)
    lapsed = user_factory("lapsed@example.com")
    over = now - 3 * DAY
    paid_cycle(db, lapsed, monthly, starts=now - 33 * DAY, ends=over, used=300)
    user_factory("never@example.com")
    rows = listed(admin.get("/admin/users"))
    sub = rows["sub@example.com"]
    assert sub.select_one("[data-label=Plan]")["data-plan"] == "monthly"
    assert sub.select_one("[data-label='Units used']")["data-used"] == "12"
    assert "12 of 300" in sub.select_one("[data-label='Units used']").get_text(" ", strip=True)
    # Paid until: the end of the latest cycle, the queued renewal included.
    until = sub.select_one("[data-label='Paid until']")["data-until"]
    assert dt.datetime.fromisoformat(until) == queued.replace(microsecond=queued.microsecond)
    gone = rows["lapsed@example.com"]
    assert gone.select_one("[data-label=Plan]")["data-plan"] == ""
    assert (
        dt.datetime.fromisoformat(gone.select_one("[data-label='Paid until']")["data-until"])
        == over
    )
    assert gone.select_one("[data-label='Units used']")["data-used"] == ""
    never = rows["never@example.com"]
    assert never.select_one("[data-label='Paid until']")["data-until"] == ""


def test_the_plan_filter_lists_users_whose_running_cycle_is_of_that_plan(admin, db, user_factory):
    now = utcnow()
    monthly = plan(db, "monthly")
    yearly = plan(db, "yearly", price="99.00", currency="EUR", period_months=12, units=4000)
    paid_cycle(db, user_factory("m@example.com"), monthly, starts=now - DAY, ends=now + 29 * DAY)
    paid_cycle(db, user_factory("y@example.com"), yearly, starts=now - DAY, ends=now + 360 * DAY)
    old = user_factory("was-yearly@example.com")
    paid_cycle(db, old, yearly, starts=now - 400 * DAY, ends=now - 35 * DAY)
    cycle(db, user_factory("granted@example.com"), monthly, starts=now - DAY, ends=now + DAY)
    assert set(listed(admin.get("/admin/users?plan=yearly"))) == {"y@example.com"}
    assert set(listed(admin.get("/admin/users?plan=monthly"))) == {
        "m@example.com",
        "granted@example.com",
    }
    assert set(listed(admin.get("/admin/users?plan=monthly&q=gran"))) == {"granted@example.com"}


def test_expiring_soon_lists_paid_access_ending_within_7_days(admin, db, user_factory):
    now = utcnow()
    monthly = plan(db, "monthly")
    paid_cycle(
        db, user_factory("soon@example.com"), monthly, starts=now - 27 * DAY, ends=now + 3 * DAY
    )
    paid_cycle(
        db, user_factory("later@example.com"), monthly, starts=now - 20 * DAY, ends=now + 10 * DAY
    )
    renewed = user_factory("renewed@example.com")
    paid_cycle(db, renewed, monthly, starts=now - 27 * DAY, ends=now + 3 * DAY)
    paid_cycle(db, renewed, monthly, starts=now + 3 * DAY, ends=now + 33 * DAY)
    paid_cycle(db, user_factory("over@example.com"), monthly, starts=now - 40 * DAY, ends=now - DAY)
    assert set(listed(admin.get("/admin/users?expiring=7"))) == {"soon@example.com"}
    assert set(listed(admin.get("/admin/users?expiring=14"))) == {
        "soon@example.com",
        "later@example.com",
    }


def test_bad_filters_are_a_400_naming_them(admin, db):
    plan(db, "monthly")
    res = admin.get("/admin/users?plan=gold")
    assert res.status_int == 400
    assert "plan must be one of" in res.html.select_one("p.alert.error").get_text()
    for bad in ("soon", "0", "91"):
        res = admin.get(f"/admin/users?expiring={bad}")
        assert res.status_int == 400
        assert (
            "expiring must be a number of days" in res.html.select_one("p.alert.error").get_text()
        )


def test_filtered_lists_page_by_keyset_and_keep_their_filters(admin, db, user_factory):
    now = utcnow()
    monthly = plan(db, "monthly")
    subscribed = set()
    for i in range(55):
        user = user_factory(f"p{i:02}@example.com")
        paid_cycle(db, user, monthly, starts=now - DAY, ends=now + 29 * DAY)
        subscribed.add(user.email)
        user_factory(f"free{i:02}@example.com")
    first = admin.get("/admin/users?plan=monthly")
    page1 = listed(first)
    assert len(page1) == 50
    link = first.html.select_one("a[rel=next]")["href"]
    assert "plan=monthly" in link
    page2 = listed(admin.get(link))
    assert set(page1) | set(page2) == subscribed and not set(page1) & set(page2)
