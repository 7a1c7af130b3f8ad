"""The overview's Money row (DESIGN 4.7): revenue per currency and processor over today, 7
and 30 days to the exact decimal, refunds and unfinished payments left out, packs counted as
revenue but never as subscriptions; active subscriptions per plan, new, renewed, expiring in
7 days and churned in 30 days at their exact boundaries; monthly recurring revenue; and the
chart of revenue per day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from money_support import cycle, pack, paid_cycle, payment, plan
from nproxy_core.admin import money
from nproxy_core.db import utcnow

NOW = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def revenue_world(db: Any, user_factory: Any) -> None:
    buyer = user_factory("buyer@example.com")
    monthly = plan(db, "monthly")
    hundred = pack(db)
    at = NOW - dt.timedelta(hours=1)
    payment(db, buyer, "10.00", at=at, plan_row=monthly)
    payment(db, buyer, "0.01", at=NOW - 7 * DAY)  # exactly 7 days: in the week
    payment(db, buyer, "5.00", at=NOW - 7 * DAY - SECOND)  # a second older: not
    payment(db, buyer, "20.00", at=NOW - 30 * DAY, processor="stripe")  # exactly 30 days
    payment(db, buyer, "7.00", at=NOW - 30 * DAY - SECOND, processor="stripe")  # too old
    payment(db, buyer, "99.00", at=money.floor_day(NOW), currency="EUR", processor="stripe")
    payment(db, buyer, "50.00", at=at, currency="EUR", processor="stripe", status="refunded")
    payment(db, buyer, "3.00", at=at, status="partially_paid", needs_review=True)
    payment(db, buyer, "8.00", at=at, status="expired")
    payment(db, buyer, "4.99", at=NOW - 2 * DAY, pack_row=hundred)  # a pack is revenue
    payment(db, buyer, "1.00", at=NOW + SECOND)  # after now
    payment(db, buyer, "0.00012345", at=at, currency="BTC")
    payment(db, buyer, "0.00000001", at=NOW - dt.timedelta(hours=2), currency="BTC")


def figures(rows: list[money.Revenue]) -> dict[tuple[str, str | None], tuple[str, str, str]]:
    return {(r.currency, r.processor): (str(r.today), str(r.week), str(r.month)) for r in rows}


def test_revenue_per_currency_and_processor_is_exact_in_each_window(db, revenue_world):
    found = money.money(db, NOW)
    per = {k: tuple(Decimal(v) for v in vs) for k, vs in figures(found.revenue).items()}
    assert per == {
        ("BTC", "nowpayments"): (Decimal("0.00012346"),) * 3,
        ("EUR", "stripe"): (Decimal("99.00"),) * 3,
        ("USD", "nowpayments"): (Decimal("10.00"), Decimal("15.00"), Decimal("20.00")),
        ("USD", "stripe"): (Decimal(0), Decimal(0), Decimal("20.00")),
    }
    totals = {k: tuple(Decimal(v) for v in vs) for k, vs in figures(found.totals).items()}
    assert totals == {
        ("BTC", None): (Decimal("0.00012346"),) * 3,
        ("EUR", None): (Decimal("99.00"),) * 3,
        ("USD", None): (Decimal("10.00"), Decimal("15.00"), Decimal("40.00")),
    }
    for row in found.revenue + found.totals:
        assert all(isinstance(v, Decimal) for v in (row.today, row.week, row.month))


def test_revenue_per_day_fills_the_chart_with_exact_amounts(db, revenue_world):
    found = money.money(db, NOW)
    assert len(found.days) == money.CHART_DAYS
    assert found.days[-1] == money.floor_day(NOW)
    assert found.days[0] == money.floor_day(NOW) - 29 * DAY
    usd = found.daily["USD"]
    assert usd[-1] == Decimal("10.00")
    assert usd[-3] == Decimal("4.99")
    assert usd[-8] == Decimal("5.01")  # 7 days ago: 0.01 at 12:00 and 5.00 a second before
    assert sum(usd) == Decimal("20.00")  # 30 days ago (20.00 by stripe) is before the chart
    assert found.daily["EUR"][-1] == Decimal("99.00")
    assert set(found.daily) == {"BTC", "EUR", "USD"}


def test_the_chart_writes_exact_amounts_and_sums_them_for_screen_readers(db, revenue_world):
    from nproxy_core.admin import charts

    found = money.money(db, NOW)
    chart = charts.daily_amounts("c", "Revenue", found.days, found.daily["USD"], "USD")
    titles = [r.title for r in chart.rects]
    assert titles == ["2026-03-08: 5.01 USD", "2026-03-13: 4.99 USD", "2026-03-15: 10.00 USD"]
    assert "20.00 USD in the last 30 days" in chart.summary
    assert chart.legend[0].total == "20.00"


@pytest.fixture
def subscribers(db: Any, user_factory: Any) -> dict[str, Any]:
    monthly = plan(db, "monthly")
    yearly = plan(db, "yearly", price="120.00", currency="EUR", period_months=12, units=4000)
    free = plan(db, "free", price="0", free=True, units=10)
    u = {
        name: user_factory(f"{name}@example.com")
        for name in (
            "new1",
            "yearly",
            "renewer",
            "granted",
            "free",
            "packer",
            "churned",
            "long_gone",
            "edge7",
            "past7",
            "churn_edge",
            "continued",
            "refunded",
        )
    }
    paid_cycle(db, u["new1"], monthly, starts=NOW - 10 * DAY, ends=NOW + 20 * DAY)
    paid_cycle(db, u["yearly"], yearly, starts=NOW - 100 * DAY, ends=NOW + 265 * DAY)
    paid_cycle(db, u["renewer"], monthly, starts=NOW - 40 * DAY, ends=NOW - 10 * DAY)
    paid_cycle(db, u["renewer"], monthly, starts=NOW - 10 * DAY, ends=NOW + 3 * DAY)
    cycle(db, u["granted"], monthly, starts=NOW - DAY, ends=NOW + 29 * DAY)
    cycle(db, u["free"], free, starts=NOW - DAY, ends=NOW + 29 * DAY)
    payment(db, u["packer"], "4.99", at=NOW - DAY, pack_row=pack(db))
    paid_cycle(db, u["churned"], monthly, starts=NOW - 35 * DAY, ends=NOW - 5 * DAY)
    paid_cycle(db, u["long_gone"], monthly, starts=NOW - 61 * DAY, ends=NOW - 30 * DAY - SECOND)
    paid_cycle(db, u["edge7"], monthly, starts=NOW - 23 * DAY, ends=NOW + 7 * DAY)
    paid_cycle(db, u["past7"], monthly, starts=NOW - 23 * DAY, ends=NOW + 7 * DAY + SECOND)
    paid_cycle(db, u["churn_edge"], monthly, starts=NOW - 60 * DAY, ends=NOW - 30 * DAY)
    paid_cycle(db, u["continued"], monthly, starts=NOW - 28 * DAY, ends=NOW + 2 * DAY)
    cycle(db, u["continued"], monthly, starts=NOW + 2 * DAY, ends=NOW + 32 * DAY)
    # A refund ended this one at once: not a subscription, not new, not churned.
    paid_cycle(
        db, u["refunded"], monthly, starts=NOW - 5 * DAY, ends=NOW - 5 * DAY, status="refunded"
    )
    return u


def test_active_subscriptions_per_plan_count_paid_cycles_only(db, subscribers):
    found = money.money(db, NOW)
    per_plan = {p.code: p.active for p in found.subscriptions}
    # Grants, free plans and packs are not subscriptions; a refunded cycle has ended.
    assert per_plan == {"monthly": 5, "yearly": 1}
    assert found.active_subscriptions == 6


def test_new_and_renewed_in_30_days(db, subscribers):
    found = money.money(db, NOW)
    assert (found.new, found.renewed) == (4, 1)


def test_expiring_in_7_days_and_churned_in_30_days_at_their_boundaries(db, subscribers):
    found = money.money(db, NOW)
    # renewer (3 days) and edge7 (exactly 7 days); not past7 (a second later), not continued
    # (a cycle follows).
    assert found.expiring == 2
    # churned (5 days ago) and churn_edge (exactly 30 days ago); not long_gone, not refunded.
    assert found.churned == 2


def test_monthly_recurring_revenue_normalises_each_plan_by_its_period(db, subscribers):
    found = money.money(db, NOW)
    assert found.mrr == {"EUR": Decimal("10.00"), "USD": Decimal("49.95")}
    assert str(found.mrr["USD"]) == "49.95"


def test_monthly_recurring_revenue_rounds_to_the_currency_precision_half_up(db, user_factory):
    quarterly = plan(db, "quarterly", price="10.00", period_months=3)
    for n in range(2):
        paid_cycle(
            db, user_factory(f"q{n}@example.com"), quarterly, starts=NOW - DAY, ends=NOW + 80 * DAY
        )
    assert money.money(db, NOW).mrr == {"USD": Decimal("6.67")}  # 20.00 / 3 = 6.666…


def test_the_overview_shows_the_money_row(admin, db, user_factory):
    now = utcnow()
    buyer = user_factory("shopper@example.com")
    monthly = plan(db, "monthly")
    paid_cycle(db, buyer, monthly, starts=now - 2 * DAY, ends=now + 3 * DAY, amount="9.99")
    payment(db, buyer, "4.99", at=now - 3 * DAY, pack_row=pack(db), processor="stripe")
    payment(db, buyer, "9.99", at=now - 3 * DAY, status="refunded")
    res = admin.get("/admin")
    assert res.status_int == 200
    total = res.html.select_one('#revenue tr.total[data-currency="USD"]')
    assert total.select_one('[data-window="week"]').get_text(strip=True) == "14.98"
    assert total.select_one('[data-window="month"]').get_text(strip=True) == "14.98"
    stripe = res.html.select_one('#revenue tr[data-processor="stripe"]')
    assert stripe.select_one('[data-window="week"]').get_text(strip=True) == "4.99"
    assert res.html.select_one("#subscriptions")["data-value"] == "1"
    assert res.html.select_one('#subscriptions a[data-plan="monthly"]') is not None
    assert res.html.select_one("#new")["data-value"] == "1"
    assert res.html.select_one("#expiring")["data-value"] == "1"
    assert res.html.select_one('#mrr [data-currency="USD"]').get_text(" ", strip=True) == (
        "9.99 USD"
    )
    chart = res.html.select_one("#chart-revenue-usd svg")
    assert chart["role"] == "img" and "14.98 USD in the last 30 days" in chart["aria-label"]


def test_the_overview_without_any_payment_says_so(admin):
    res = admin.get("/admin")
    assert "No revenue in the last 30 days." in res.text
    assert res.html.select_one("#subscriptions")["data-value"] == "0"


def test_the_overview_keeps_its_figures_for_a_minute_then_reads_them_again(app, db, user_factory):
    registry = app.app.registry
    buyer = user_factory("early@example.com")
    payment(db, buyer, "10.00", at=NOW - DAY)
    first = money.kept_money(db, registry, NOW)
    payment(db, buyer, "5.00", at=NOW - DAY)
    kept = money.kept_money(db, registry, NOW + dt.timedelta(seconds=59))
    assert kept is first and kept.as_of == NOW
    assert kept.totals[0].week == Decimal("10.00")
    fresh = money.kept_money(db, registry, NOW + dt.timedelta(seconds=60))
    assert fresh.totals[0].week == Decimal("15.00")
    registry.settings[money.SETTING] = "0"
    payment(db, buyer, "1.00", at=NOW - DAY)
    again = money.kept_money(db, registry, NOW + dt.timedelta(seconds=61))
    assert again.totals[0].week == Decimal("16.00")
