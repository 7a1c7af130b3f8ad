"""The customer pages in units (DESIGN 4.12): the dashboard names the plan, words its bucket in
units and lists the packs exactly; the pricing page shows every plan's units and what a unit
buys, model by model. No customer page speaks of "requests" left."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import sqlalchemy as sa

from nproxy_core.db import utcnow


def text_of(node: Any) -> str:
    """An element's text as a person reads it: whitespace collapsed."""
    return " ".join(node.text.split())


def registered(api: Any, db: Any, email: str) -> Any:
    from nproxy_core.accounts.models import User

    api.register(email)
    return db.scalar(sa.select(User).where(User.email == email))


def test_dashboard_names_the_plan_and_words_its_bucket_in_units(
    api: Any, db: Any, make_cycle: Any
) -> None:
    from nproxy_core.billing.models import Plan

    user = registered(api, db, "units@example.com")
    cycle = make_cycle(user, request_limit=10, used=5)
    plan_name = db.scalar(sa.select(Plan.name).where(Plan.code == "monthly"))
    page = api.get("/dashboard")

    subscription = page.html.select_one("#subscription")
    assert subscription["data-status"] == "active"
    assert subscription["data-plan"] == "monthly"
    assert plan_name in text_of(subscription) and "Active" in text_of(subscription)
    ends = text_of(page.html.select_one("#plan-ends"))
    assert ends.startswith(f"Ends on {cycle.ends_at:%-d %b %Y}")
    assert "days left" in ends

    quota = page.html.select_one("#quota")
    assert text_of(quota.select_one("h2")) == "Units left this period"
    assert text_of(quota.select_one("#quota-left")) == "About 60% of this period's units left"
    assert quota.select_one("[role=meter]")["aria-valuenow"] == "60"
    # The bucket only: never the cycle's own counts.
    assert not re.search(r"\b(10|5) units\b", page.text)


def test_dashboard_lists_packs_exactly_oldest_first_without_spent_or_revoked_ones(
    api: Any, db: Any, make_cycle: Any, make_pack: Any
) -> None:
    user = registered(api, db, "packs@example.com")
    make_cycle(user)
    expires = dt.datetime(2027, 12, 7, 10, 0, tzinfo=dt.UTC)
    make_pack(user, 150, used=30, expires_at=expires, label="Starter pack")
    make_pack(user, 1, expires_at=expires + dt.timedelta(days=30), label="Top-up")
    make_pack(user, 10, used=10, expires_at=expires, label="Spent pack")
    make_pack(user, 10, expires_at=expires, revoked=True, label="Revoked pack")
    make_pack(user, 10, expires_at=utcnow() - dt.timedelta(days=1), label="Old pack")

    page = api.get("/dashboard")
    packs = page.html.select_one("#packs")
    assert packs["data-count"] == "2"
    assert [text_of(li) for li in packs.select("li.pack")] == [
        "Starter pack — 120 units left, expires 7 Dec 2027",
        "Top-up — 1 unit left, expires 6 Jan 2028",
    ]
    assert packs.select_one('a[href="/pricing#packs"]') is not None


def test_dashboard_without_a_plan_but_with_a_pack_opens_the_chat(
    api: Any, db: Any, make_pack: Any
) -> None:
    user = registered(api, db, "payg@example.com")
    make_pack(user, 40, expires_at=utcnow() + dt.timedelta(days=300), label="Starter pack")
    page = api.get("/dashboard")
    assert page.html.select_one("#subscription")["data-status"] == "none"
    assert "No subscription yet" in text_of(page.html.select_one("#subscription"))
    quota = page.html.select_one("#quota")
    assert "new images draw on your packs" in text_of(quota)
    assert quota.select_one("[role=meter]") is None
    assert quota.select_one('a[href="/chat"]') is not None


def test_dashboard_without_packs_says_what_a_pack_is(api: Any, db: Any) -> None:
    registered(api, db, "nopacks@example.com")
    packs = api.get("/dashboard").html.select_one("#packs")
    assert packs["data-count"] == "0"
    assert "No packs" in text_of(packs)
    assert packs.select("li") == []


def test_customer_pages_speak_of_units_not_requests(
    api: Any, app: Any, db: Any, make_cycle: Any
) -> None:
    user = registered(api, db, "words@example.com")
    make_cycle(user, request_limit=5, used=5)
    for path in ("/dashboard", "/chat", "/pricing"):
        html = api.get(path).text
        assert not re.search(r"requests? (left|are used up)", html, re.IGNORECASE), path
        assert "quota is used up" not in html, path
    dashboard = api.get("/dashboard").html
    assert "units are used up" in text_of(dashboard.select_one("#quota-used-up"))
    chat = api.get("/chat").html
    assert text_of(chat.select_one(".quota-label span")) == "Units left"
    assert chat.select_one("#cost-line")["aria-live"] == "polite"
    renew = chat.select_one("#renew")
    assert renew["href"] == "/pricing" and text_of(renew) == "Renew or buy a pack"


def test_pricing_shows_each_plans_units_and_the_images_they_make(app: Any, db: Any) -> None:
    from nproxy_core.billing.models import Plan

    db.add(
        Plan(
            code="season",
            name="Season",
            price=49,
            currency="USD",
            period_months=3,
            units=2400,
            models=[],
            max_batch=2,
            public=True,
            free=False,
            recurring_allowed=True,
            active=True,
        )
    )
    db.commit()
    page = app.get("/pricing")
    cards = page.html.select("#plans > li.plan")
    assert [c["data-plan"] for c in cards] == ["monthly", "season"]
    season = page.html.select_one("#plan-season")
    assert "49.00 USD for 3 months" in text_of(season)
    assert "2400 units for 3 months" in text_of(season)
    assert "Up to 2 images at a time" in text_of(season)
    makes = [text_of(li) for li in season.select(".buys li")]
    assert makes and all(re.fullmatch(r"about \d+ images? with .+", line) for line in makes)
    # Models by the names people know, never by their ids.
    assert [line.split(" with ")[1] for line in makes] == ["Demo", "Demo Pro"]


def test_the_units_explainer_names_each_model_its_cost_and_its_dearer_sizes(
    app: Any, db: Any
) -> None:
    # The demo provider's models (DESIGN 4.12): Demo 1 unit, Demo Pro 3, and 6 at its _2k
    # sizes; an admin's override of one price shows as that price.
    from pyramid.renderers import render
    from pyramid.request import Request, apply_request_extensions
    from pyramid.scripting import prepare

    import nproxy_core.billing
    from nproxy_core.billing.views import pricing_page
    from nproxy_core.pricing import IUnitPrices

    env = prepare(registry=app.app.registry, request=Request.blank("/pricing"))
    request = env["request"]
    apply_request_extensions(request)
    request.tm.begin()
    try:
        prices = request.find_service(IUnitPrices)
        table = prices.table(request.db)
        assert {(p.model, p.units) for p in table} >= {("demo-image-1", 1), ("demo-pro", 6)}
        context = {**pricing_page(request), "unit_prices": table}
        html = render("billing/pricing.html", context, request, package=nproxy_core.billing)
    finally:
        request.tm.abort()
        env["closer"]()
    from bs4 import BeautifulSoup

    explainer = BeautifulSoup(html, "html.parser").select_one("#units")
    lines = {li["data-model"]: text_of(li) for li in explainer.select(".unit-prices li")}
    assert lines == {
        "demo-image-1": "Demo = 1 unit",
        "demo-pro": "Demo Pro = 3 units an image, 6 units at 2K",
    }
