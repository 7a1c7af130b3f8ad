"""Every admin page fits a phone and a desktop, in the light and the dark theme: no sideways
scroll at 390 px or 1280 px, and axe finds nothing serious or critical.

The pages are the admin's GET routes from the route table (a page added later is visited too),
each with real rows behind it: a key in review with a long reason, a proxy whose last error is
one long unbroken string, a payment in review with a long reason, a user, a plan, a pack, a
generation with an attempt and an open alert. On a phone the overview opens with "Needs
attention". Screenshots land in ``test-artifacts/browser/`` (``admin-fit-*``): look at them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import make_generation
from browser_support import CHROMIUM, LiveStack, axe_problems, shot, sideways_scroll
from nproxy_core.alerts import AlertKind
from nproxy_core.alerts.models import Alert
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing.models import CreditPack, Payment, Plan
from nproxy_core.db import utcnow
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.keypool.models import KeyAttempt, KeyState, ProviderKey, Proxy
from nproxy_core.wiring import find_service

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    # A hang guard, not a measure: about twenty pages in four views, each checked by axe.
    pytest.mark.timeout(600),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]

ADMIN = "fit-admin@example.com"
PASSWORD = "correct horse battery"
#: One long word, as proxies and providers write errors: nowhere for a line to break.
LONG_ERROR = "ProxyError('Cannot connect to proxy.', " + "x" * 40 + ".example.net:3128/" * 12
VIEWS = [(390, "light"), (390, "dark"), (1280, "light"), (1280, "dark")]


@pytest.fixture
def stack(db: Any, base_settings: dict[str, Any], tmp_path: Path) -> Iterator[LiveStack]:
    stack = LiveStack(
        {
            **base_settings,
            "nproxy.providers": "demo",
            "nproxy.payments": "demo",
            # Two-factor login is another test's subject: here the pages themselves.
            "nproxy.admin.require_2fa": "false",
        },
        tmp_path,
    )
    try:
        stack.start(worker=False)
        yield stack
    finally:
        stack.stop()


def seed(db: Any, stack: LiveStack, user_factory: Any) -> dict[str, str]:
    """A row behind every kind of page; {placeholder: value} for the routes' patterns."""
    user_factory(ADMIN, password=PASSWORD, admin=True)
    customer = user_factory("a.customer.with.a.rather.long.address@example-company.com")
    actor = Actor("test", Surface.CLI)
    key = pool.add_key(
        db,
        find_service(stack.registry, ISecretBox),
        provider="demo",
        secret="demo-key-for-the-fit-test",
        enabled_providers=["demo"],
        actor=actor,
        label="eu-west-3-primary-production",
        project="a-google-cloud-project-with-a-long-name",
        billing_group="acme-billing",
    )
    proxy = pool.add_proxy(db, "http://user:pw@127.0.0.1:3128", label="eu-west", actor=actor)
    key.proxy = proxy
    key.state, key.state_reason = KeyState.MANUAL_REVIEW, LONG_ERROR
    proxy.last_error, proxy.last_failure_at = LONG_ERROR, utcnow()
    proxy.consecutive_failures = proxy.total_failures = 3
    plan = db.scalar(sa.select(Plan).where(Plan.code == "monthly"))
    payment = Payment(
        order_id="order-fit-0001",
        user_id=customer.id,
        processor="demo",
        amount=Decimal("9.5"),
        currency="USD",
        status="partially_paid",
        plan_id=plan.id,
        plan_units=plan.units,
        plan_period_months=1,
        needs_review=True,
        review_reason="paid 9.5 of 10 USD (partially paid); the rest may still arrive later",
    )
    pack = CreditPack(
        code="fit-pack", name="A pack for the fit test", price=Decimal(5), currency="USD", units=500
    )
    db.add_all([payment, pack])
    db.flush()
    now = utcnow()
    db.add(
        Alert(
            kind=str(AlertKind.KEY_MANUAL_REVIEW),
            subject=f"demo key {key.id}",
            detail=f"demo {key.name} was rejected and needs manual review: {LONG_ERROR}",
            first_seen=now,
            last_seen=now,
            count=1,
            sent_count=0,
        )
    )
    db.commit()
    generation = make_generation(db, customer, status="failed", error_code="provider_unavailable")
    db.add(
        KeyAttempt(
            key_id=key.id,
            provider="demo",
            reference=str(generation.id),
            image_index=0,
            path="proxy",
            proxy_id=proxy.id,
            outcome="transport",
            latency_ms=30_000,
            error=LONG_ERROR,
            picked_at=now,
            claim_version=1,
            created_at=now - dt.timedelta(minutes=3),
        )
    )
    db.commit()
    assert db.scalar(sa.select(sa.func.count()).select_from(ProviderKey)) == 1
    assert db.scalar(sa.select(sa.func.count()).select_from(Proxy)) == 1
    # Shipped prompt templates (where that feature is installed) have pages of their own.
    template = db.execute(sa.text("SELECT to_regclass('prompt_templates') IS NOT NULL")).scalar()
    slug = {}
    if template:
        slug["slug"] = db.execute(
            sa.text("SELECT slug FROM prompt_templates ORDER BY id LIMIT 1")
        ).scalar()
    return {
        **slug,
        "user_id": str(customer.id),
        "payment_id": str(payment.id),
        "generation_id": str(generation.id),
        "key_id": str(key.id),
        "proxy_id": str(proxy.id),
        "code": plan.code,
        "pack_code": pack.code,
    }


def admin_pages(registry: Any, rows: dict[str, str]) -> dict[str, str]:
    """{route name: URL} of every admin page (a GET view under /admin that renders HTML)."""
    gets = {
        view["route_name"]
        for view in (item["introspectable"] for item in _views(registry))
        if view["route_name"] and "GET" in (view["request_methods"] or ("GET",))
    }
    pages = {}
    for route in registry.introspector.get_category("routes"):
        name, pattern = route["introspectable"]["name"], route["introspectable"]["pattern"]
        if name not in gets or not pattern.startswith("/admin") or pattern.endswith(".csv"):
            continue
        values = {
            **rows,
            "code": rows["pack_code"] if name.startswith("admin.pack") else rows["code"],
        }
        missing = set(re.findall(r"\{(\w+)\}", pattern)) - set(values)
        assert not missing, f"{name} ({pattern}) needs a row: give seed() one for {missing}"
        pages[name] = re.sub(r"\{(\w+)\}", lambda m, v=values: v[m.group(1)], pattern)
    # The review queue and a search: the lists as the admin most often sees them.
    pages["admin.payments?review"] = "/admin/payments?state=review"
    pages["admin.users?q"] = "/admin/users?q=customer"
    return pages


def _views(registry: Any) -> list[Any]:
    return registry.introspector.get_category("views")


def log_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", ADMIN)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def test_every_admin_page_fits_a_phone_and_a_desktop_in_both_themes(
    stack: LiveStack, browser: Any, db: Any, user_factory: Any
) -> None:
    from playwright.sync_api import expect

    rows = seed(db, stack, user_factory)
    pages = admin_pages(stack.registry, rows)
    # Every page the brief names is among them (the route table did not come back empty).
    for name in (
        "admin.overview",
        "admin.keys",
        "admin.key",
        "admin.proxies",
        "admin.payments",
        "admin.payment",
        "admin.users",
        "admin.user",
        "admin.plan",
        "admin.pack",
        "admin.telegram",
        "admin.generation",
    ):
        assert name in pages, name

    problems: list[str] = []
    errors: list[str] = []
    for width, scheme in VIEWS:
        context = browser.new_context(
            viewport={"width": width, "height": 844 if width < 600 else 900},
            is_mobile=width < 600,
            color_scheme=scheme,
        )
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(page, stack.url)
        for name, path in pages.items():
            answer = page.goto(f"{stack.url}{path}")
            assert answer is not None and answer.status == 200, (path, answer and answer.status)
            expect(page.locator(".admin-nav")).to_be_visible()
            slug = re.sub(r"[^a-z0-9]+", "-", name.removeprefix("admin."))
            shot(page, f"admin-fit-{width}-{scheme}-{slug}", full_page=True)
            wide = sideways_scroll(page)
            if wide > 0:
                problems.append(f"{path} at {width} px ({scheme}) scrolls {wide} px sideways")
            problems.extend(f"{scheme} {width}: {p}" for p in axe_problems(page))
        if width < 600:
            page.goto(f"{stack.url}/admin")
            # On a phone the overview opens with what needs attention, on the first screen.
            first = page.locator("main section, main .card").first
            expect(first).to_have_attribute("id", "attention")
            assert page.locator("#attention").bounding_box()["y"] < 844
            # Keys: one compact line each (label, state, id), the rest behind it.
            page.goto(f"{stack.url}/admin/keys")
            line = page.locator(f"#key-cards details[data-key='{rows['key_id']}'] > summary")
            expect(line).to_contain_text("eu-west-3-primary-production")
            expect(line).to_contain_text(f"#{rows['key_id']}")
            expect(line).to_contain_text("manual review")
            expect(page.locator("#key-list")).to_be_hidden()
            line.click()
            expect(
                page.locator(f"#key-cards details[data-key='{rows['key_id']}']")
            ).to_contain_text("acme-billing")
        else:
            page.goto(f"{stack.url}/admin/keys")
            expect(page.locator("#key-list")).to_be_visible()
            expect(page.locator("#key-cards")).to_be_hidden()
        context.close()
    assert errors == [], errors
    assert problems == [], "\n".join(problems)
