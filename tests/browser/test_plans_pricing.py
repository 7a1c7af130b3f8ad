"""The pricing page with several plans for sale: side by side at desktop and phone widths, no
sideways scrolling, no serious accessibility problem, and the plan chosen is the one bought."""

from __future__ import annotations

import re
from typing import Any

from apiclient import PASSWORD
from browser_support import axe_problems, shot, sideways_scroll

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def test_pricing_shows_every_plan_for_sale_and_buys_the_chosen_one(
    live_stack: Any, page: Any
) -> None:
    from playwright.sync_api import expect

    for code, name, price, units, months in (
        ("pro", "Pro", "24.90", "1000", "1"),
        ("season", "Season", "49", "2400", "3"),
    ):
        added = live_stack.nproxy(
            "plans", "add", code, "--name", name, "--price", price, "--currency", "USD",
            "--units", units, "--period-months", months,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr or added.stdout
    hidden = live_stack.nproxy(
        "plans", "add", "staff", "--name", "Staff", "--price", "1", "--currency", "USD",
        "--units", "5", "--period-months", "1", "--hidden",
    )  # fmt: skip
    assert hidden.returncode == 0, hidden.stderr or hidden.stdout
    base = live_stack.url

    problems: list[str] = []
    for size, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page.set_viewport_size(size)
        page.goto(f"{base}/pricing")
        page.wait_for_load_state("networkidle")
        cards = page.locator("#plans .plan")
        expect(cards).to_have_count(3)
        assert cards.evaluate_all("els => els.map(e => e.dataset.plan)") == [
            "monthly",
            "pro",
            "season",
        ]
        expect(page.locator("#plan-season")).to_contain_text("49.00 USD")
        expect(page.locator("#plan-season")).to_contain_text("3 months")
        expect(page.locator("#plan-pro")).to_contain_text("1000 images")
        overflow = sideways_scroll(page)
        if overflow > 0:
            problems.append(f"/pricing scrolls sideways by {overflow}px at {label} width")
        shot(page, f"pricing-plans-{label}", full_page=True)
        problems.extend(axe_problems(page))
    assert problems == []

    # A customer chooses Season and pays for it with the demo processor.
    page.set_viewport_size(DESKTOP)
    page.goto(f"{base}/register")
    page.fill("#email", "season@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/pricing")
    page.goto(f"{base}/pricing")
    page.check("input[name=plan][value=season]")
    page.select_option("#processor", "demo")
    page.click("#checkout button[type=submit]")
    page.wait_for_url(re.compile(r"/billing/demo/checkout/"))
    expect(page.locator("main")).to_contain_text("Season plan")
    page.click("button[value=paid]")
    expect(page.locator("#payment")).to_have_attribute("data-status", "finished")
