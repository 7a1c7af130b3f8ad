"""The admin's rules as plain functions: chart scales and geometry, keyset cursors, relative
times; and the overview's numbers on the embedded SQLite database, where percentiles and
hourly buckets are computed without PostgreSQL's functions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nproxy_core.admin import charts, pagination
from nproxy_core.admin.stats import HourlySeries, hour_starts
from nproxy_core.errors import ValidationError
from nproxy_core.templating import account_label, ago, money

NOW = dt.datetime(2026, 3, 1, 14, 37, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [
        (0, 2),
        (1, 2),
        (3, 4),
        (5, 10),
        (10, 10),
        (11, 20),
        (21, 40),
        (199, 200),
        (201, 400),
        (12345, 20000),
        (41000, 100000),
    ],
)
def test_chart_scales_round_up_to_a_whole_half(value, ceiling):
    assert charts.nice_ceiling(value) == ceiling
    assert ceiling % 2 == 0


def test_the_24_hours_end_with_the_current_one():
    hours = hour_starts(NOW)
    assert len(hours) == 24
    assert hours[-1] == dt.datetime(2026, 3, 1, 14, tzinfo=dt.UTC)
    assert hours[0] == dt.datetime(2026, 2, 28, 15, tzinfo=dt.UTC)


def test_stacked_bars_stack_in_order_and_scale_to_the_tallest_hour():
    hours = hour_starts(NOW)
    data = HourlySeries(hours, {"a": [0] * 23 + [30], "b": [0] * 22 + [5, 10]})
    chart = charts.stacked_hours("c", "t", data, [("a", "made", "s-a"), ("b", "failed", "s-b")])
    assert not chart.empty
    last = [r for r in chart.rects if r.title.startswith("14:00")]
    assert [r.css for r in last] == ["s-a", "s-b"]
    plot_h = chart.height - 10 - 26
    # 40 in the last hour: the scale goes to 40, so 30 is 75 % of the plot.
    assert last[0].height == pytest.approx(plot_h * 30 / 40)
    assert last[1].y + last[1].height == pytest.approx(last[0].y)
    assert "14:00 UTC: 30 made" in [r.title for r in last]
    assert [item.total for item in chart.legend] == ["30", "15"]
    assert {label.text for label in chart.labels} >= {"0", "20", "40", "14h"}


def test_an_empty_day_draws_no_bars_and_says_so():
    data = HourlySeries(hour_starts(NOW), {"a": [0] * 24})
    chart = charts.stacked_hours("c", "t", data, [("a", "made", "s-a")])
    assert chart.empty and chart.rects == []


def test_latency_bars_draw_p95_behind_p50_and_name_keys_without_attempts():
    chart = charts.latency_bars("l", "t", [("fast", 100.0, 200.0), ("idle", None, None)])
    p95, p50 = chart.rects
    assert (p95.css, p50.css) == ("s-p95", "s-p50") and p50.width == pytest.approx(p95.width / 2)
    assert "no attempts" in [label.text for label in chart.labels]


def test_a_cursor_round_trips_and_a_damaged_one_is_a_clear_error():
    moment = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    cursor = pagination.encode(moment, 42)
    assert pagination.decode(cursor, dt.datetime, int) == (moment, 42)
    for bad in (
        "",
        "x",
        pagination.encode("nope", 1),
        pagination.encode(moment, "a"),
        pagination.encode(moment.replace(tzinfo=None), 1),
        "%%%",
        "é",
    ):
        with pytest.raises(ValidationError, match="page link is damaged"):
            pagination.decode(bad, dt.datetime, int)


@pytest.mark.parametrize(
    ("delta", "said"),
    [
        (dt.timedelta(seconds=5), "5 s ago"),
        (dt.timedelta(minutes=3, seconds=59), "3 min ago"),
        (dt.timedelta(hours=5), "5 h ago"),
        (dt.timedelta(days=2, hours=1), "2 d ago"),
        (-dt.timedelta(minutes=10), "in 10 min"),
    ],
)
def test_relative_times_read_naturally(delta, said):
    assert ago(NOW - delta, NOW) == said


@pytest.mark.parametrize(
    ("amount", "said"),
    [
        (Decimal("100.00000000"), "100"),
        (Decimal("10.00"), "10"),
        (Decimal("9.99000000"), "9.99"),
        (Decimal("0.00012345"), "0.00012345"),
        (None, ""),
    ],
)
def test_amounts_are_written_out_never_in_exponent_notation(amount, said):
    assert money(amount) == said


def test_an_account_without_email_is_named_by_its_id():
    assert account_label("ann@example.com", 7) == "ann@example.com"
    assert account_label(None, 7) == "Telegram user #7"


def test_the_overview_works_on_the_embedded_sqlite_database(
    make_app: Any, tmp_path: Path, admin_user: Any
) -> None:
    """The embedded default runs the admin too: hourly buckets and percentiles on SQLite."""
    import sqlalchemy as sa

    from admin_support import AdminBrowser, make_generation
    from nproxy_core.accounts.models import Role
    from nproxy_core.accounts.services import create_user
    from nproxy_core.audit import Actor, Surface
    from nproxy_core.db import IDatabase, utcnow
    from nproxy_core.keypool import services as pool
    from nproxy_core.keypool.interfaces import ISecretBox
    from nproxy_core.keypool.models import KeyAttempt
    from nproxy_core.migrations import upgrade
    from nproxy_core.wiring import find_service

    url = f"sqlite:///{tmp_path / 'embedded.sqlite'}"
    upgrade({"sqlalchemy.url": url})
    app = make_app(sqlalchemy__url=url)
    factory = find_service(app.app.registry, IDatabase).session_factory
    with factory() as session:
        create_user(session, "lite@example.com", "correct horse battery", role=Role.ADMIN)
        user = create_user(session, "maker@example.com", "correct horse battery")
        key = pool.add_key(
            session,
            find_service(app.app.registry, ISecretBox),
            provider="demo",
            secret="demo-sqlite-key",
            enabled_providers=["demo"],
            actor=Actor("t", Surface.CLI),
            label="lite",
        )
        now = utcnow()
        for i, latency in enumerate((100, 200, 300, 400, 1000)):
            session.add(
                KeyAttempt(
                    key_id=key.id,
                    provider="demo",
                    path="direct",
                    outcome="success" if i < 4 else "retryable",
                    latency_ms=latency,
                    picked_at=now,
                    claim_version=i,
                    created_at=now - dt.timedelta(minutes=1),
                )
            )
        session.commit()
        make_generation(session, user, status="failed", error_code="content_policy")
        assert session.scalar(sa.select(sa.func.count()).select_from(KeyAttempt)) == 5
    admin = AdminBrowser(app).login("lite@example.com")
    page = admin.get("/admin")
    assert page.status_int == 200
    assert "lite: p95 880 ms" in page.text
    attempts = page.html.select("#chart-attempts rect")
    assert {r["class"][0] for r in attempts} == {"s-success", "s-retryable"}
    assert "1 failed" in page.html.select_one("#images-hour").get_text(" ")
    row = admin.get("/admin/keys").html.select_one(f"tr[data-key='{key.id}']")
    assert "300 ms / 880 ms" in " ".join(row.get_text(" ").split())
