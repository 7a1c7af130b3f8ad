"""The pricing page's credit packs in a real browser: readable at desktop and phone widths, no
sideways scrolling, no serious accessibility problem, and a pack's Buy button buys that pack."""

from __future__ import annotations

import re
from typing import Any

from apiclient import PASSWORD
from browser_support import axe_problems, shot, sideways_scroll

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def test_pricing_offers_the_packs_and_buys_one(live_stack: Any, page: Any) -> None:
    from playwright.sync_api import expect

    for code, name, price, units in (
        ("small", "Small", "4.50", "120"),
        ("large", "Large", "20", "600"),
    ):
        added = live_stack.nproxy(
            "packs", "add", code, "--name", name, "--price", price, "--currency", "USD",
            "--units", units,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr or added.stdout
    base = live_stack.url
    page.goto(f"{base}/register")
    page.fill("#email", "packs@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/pricing")

    problems: list[str] = []
    for size, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page.set_viewport_size(size)
        page.goto(f"{base}/pricing")
        page.wait_for_load_state("networkidle")
        cards = page.locator("#packs article.pack")
        expect(cards).to_have_count(2)
        expect(page.locator("#pack-small")).to_contain_text("4.50 USD")
        expect(page.locator("#pack-small")).to_contain_text("120 units")
        expect(page.locator("#pack-small")).to_contain_text("12 months")
        buy = page.locator("#pack-small button", has_text="Buy with Demo")
        expect(buy).to_be_visible()
        box = buy.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= size["width"]
        overflow = sideways_scroll(page)
        if overflow > 0:
            problems.append(f"/pricing scrolls sideways by {overflow}px at {label} width")
        page.locator("#packs").scroll_into_view_if_needed()
        shot(page, f"pricing-packs-{label}", full_page=True)
        problems.extend(axe_problems(page))
    assert problems == []

    page.set_viewport_size(DESKTOP)
    page.goto(f"{base}/pricing")
    page.locator("#pack-large button", has_text="Buy with Demo").click()
    page.wait_for_url(re.compile(r"/billing/demo/checkout/"))
    page.click("button[value=paid]")
    expect(page.locator("#payment")).to_have_attribute("data-status", "finished")
    expect(page.locator("#pack-added")).to_contain_text("600 units of Large")
