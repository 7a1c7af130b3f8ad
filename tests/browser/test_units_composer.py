"""Units in the chat composer, in a real browser (DESIGN 4.12): a person with a known number of
units sees what a send costs before sending, can pick only the batches that fit, switches
model and gets that model's sizes; when not even one image fits, Generate gives way to
"Renew" and the prompt stays. Then the dashboard (with a pack) and the pricing
page, at desktop and phone widths, without sideways scrolling or serious axe findings.

The demo provider offers two models: Demo (1 unit an image) and Demo Pro (3 units, 6 at its
``_2k`` sizes). Screenshots land in ``test-artifacts/browser/units-*.png``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from apiclient import PASSWORD
from browser_support import CHROMIUM, axe_problems, shot, sideways_scroll, wait_for_images

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]

EMAIL = "units@example.com"
#: The sign between a batch and its unit price on the cost line.
TIMES = "\N{MULTIPLICATION SIGN}"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def run(live_stack: Any, *args: str) -> None:
    done = live_stack.nproxy(*args)
    assert done.returncode == 0, done.stderr or done.stdout


def option_texts(page: Any, select: str) -> list[str]:
    return page.locator(f"{select} option").evaluate_all("os => os.map(o => o.textContent)")


def enabled_values(page: Any, select: str) -> list[str]:
    return page.locator(f"{select} option").evaluate_all(
        "os => os.filter(o => !o.disabled).map(o => o.value)"
    )


def look(page: Any, name: str, problems: list[str]) -> None:
    """Both widths and both themes: no sideways scroll, no serious axe finding (contrast
    included), a screenshot each."""
    for size, label, scheme in (
        (DESKTOP, "desktop", "light"),
        (PHONE, "phone", "light"),
        (DESKTOP, "desktop-dark", "dark"),
    ):
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size(size)
        page.wait_for_timeout(200)
        overflow = sideways_scroll(page)
        if overflow > 0:
            problems.append(f"{page.url} scrolls sideways by {overflow}px at {label} width")
        shot(page, f"units-{name}-{label}", full_page=not name.startswith("chat"))
        problems.extend(axe_problems(page))
    page.emulate_media(color_scheme="light")
    page.set_viewport_size(DESKTOP)


def test_the_composer_says_the_cost_and_offers_only_what_fits(
    live_stack: Any, page: Any, db: Any
) -> None:
    from playwright.sync_api import expect

    from nproxy_core.accounts.models import User
    from nproxy_core.billing.models import BalanceSource, PackBalance

    base = live_stack.url
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    problems: list[str] = []

    # A plan of 5 units a month, granted to a new account.
    run(live_stack, "plans", "add", "small", "--name", "Small", "--price", "5", "--currency",
        "USD", "--units", "5", "--period-months", "1")  # fmt: skip
    page.goto(f"{base}/register")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/pricing")
    run(live_stack, "users", "grant-cycle", EMAIL, "--plan", "small", "--reason", "browser test")

    page.goto(f"{base}/chat")
    cost = page.locator("#cost-line")
    expect(page.locator("#model-control")).to_be_visible()
    expect(page.locator("#model")).to_have_value("demo/demo-image-1")
    assert option_texts(page, "#model") == ["Demo · 1 unit", "Demo Pro · 3\u20136 units"]
    expect(cost).to_have_attribute("aria-live", "polite")
    demo_sizes = option_texts(page, "#resolution")

    # Demo: 1 unit an image, so every batch up to 4 fits the 5 units; the line follows.
    assert enabled_values(page, "#batch-size") == ["1", "2", "3", "4"]
    expect(cost).to_have_text(f"1 image {TIMES} 1 unit = 1 unit")
    page.select_option("#batch-size", "4")
    expect(cost).to_have_text(f"4 images {TIMES} 1 unit = 4 units")

    # Demo Pro has sizes of its own, each saying its cost; at 3 units only one image fits.
    page.select_option("#model", "demo/demo-pro")
    expect(page.locator("#resolution option[value=square_2k]")).to_be_attached()
    assert option_texts(page, "#resolution") != demo_sizes
    assert all(t.endswith(("3 units", "6 units")) for t in option_texts(page, "#resolution"))
    page.select_option("#resolution", "square")
    expect(page.locator("#batch-size")).to_have_value("1")
    expect(cost).to_have_text(f"1 image {TIMES} 3 units = 3 units")
    expect(page.locator("#batch-size option[value='2']")).to_be_disabled()
    expect(page.locator("#batch-size option[value='2']")).to_contain_text("not enough left")

    # 6 units for one image at 2K: nothing fits. No Generate, the way out instead; the prompt
    # stays, and Enter sends nothing.
    page.fill("#prompt", "a red kite over the dunes")
    page.select_option("#resolution", "square_2k")
    expect(page.locator("#send")).to_be_hidden()
    renew = page.locator("#renew")
    expect(renew).to_be_visible()
    expect(renew).to_have_text("Renew")
    expect(renew).to_have_attribute("href", "/pricing")
    expect(cost).to_contain_text(f"1 image {TIMES} 6 units = 6 units: more than you have left.")
    page.press("#prompt", "Enter")
    expect(page.locator(".turn")).to_have_count(0)
    expect(page.locator("#prompt")).to_have_value("a red kite over the dunes")
    look(page, "chat-nothing-fits", problems)

    # Back to Demo: two images. Afterwards the figures follow (/api/v1/me once more): 3 units
    # are left, so a batch of 4 no longer fits, 3 does.
    page.select_option("#model", "demo/demo-image-1")
    expect(page.locator("#send")).to_be_visible()
    expect(renew).to_be_hidden()
    page.select_option("#batch-size", "2")
    expect(cost).to_have_text(f"2 images {TIMES} 1 unit = 2 units")
    look(page, "chat", problems)
    page.press("#prompt", "Enter")
    turn = page.locator(".turn").nth(0)
    wait_for_images(page, turn, 2)
    # The turn says which model made it, now that there is a choice.
    expect(turn.locator(".chips li")).to_have_text(["Text → image", "Demo", "Square", "2 images"])
    expect(page.locator("#batch-size option[value='4']")).to_be_disabled()
    assert enabled_values(page, "#batch-size") == ["1", "2", "3"]

    # The plan now leaves Demo Pro out: the picker still shows it, disabled, and says why.
    run(live_stack, "plans", "edit", "small", "--models", "demo-image-1")
    page.reload()
    pro = page.locator("#model option[value='demo/demo-pro']")
    expect(pro).to_be_disabled()
    expect(pro).to_have_text("Demo Pro · 3\u20136 units — Not in your plan")
    expect(page.locator("#model option[value='demo/demo-image-1']")).to_have_text("Demo · 1 unit")

    # A pack of the person's own, shown exactly in the sidebar and on the dashboard.
    user_id = db.scalar(sa.select(User.id).where(User.email == EMAIL))
    db.add(
        PackBalance(
            user_id=user_id,
            source=BalanceSource.GRANT,
            label="Starter pack",
            units=120,
            expires_at=dt.datetime(2027, 12, 7, 12, tzinfo=dt.UTC),
        )
    )
    db.commit()
    page.reload()
    expect(page.locator("#quota-packs")).to_have_text(
        "Starter pack: 120 units left, expires 7 Dec 2027"
    )
    shot(page, "units-chat-with-pack")
    page.goto(f"{base}/dashboard")
    expect(page.locator("#packs li.pack")).to_have_text(
        "Starter pack — 120 units left, expires 7 Dec 2027"
    )
    expect(page.locator("#subscription")).to_contain_text("Small")
    look(page, "dashboard", problems)

    run(live_stack, "packs", "add", "starter", "--name", "Starter pack", "--price", "4",
        "--currency", "USD", "--units", "120")  # fmt: skip
    page.goto(f"{base}/pricing")
    expect(page.locator("#plan-small")).to_contain_text("5 units a month")
    expect(page.locator("#units li")).to_have_text(
        ["Demo = 1 unit", "Demo Pro = 3 units an image, 6 units at 2K"]
    )
    look(page, "pricing", problems)

    # Pay as you go: an account with a pack and no plan generates, drawing on the pack.
    payg = page.context.browser.new_context(viewport=DESKTOP)
    try:
        other = payg.new_page()
        other.on("pageerror", lambda exc: errors.append(str(exc)))
        other.goto(f"{base}/register")
        other.fill("#email", "payg@example.com")
        other.fill("#password", PASSWORD)
        other.click("form button[type=submit]")
        other.wait_for_url(f"{base}/pricing")
        payg_id = db.scalar(sa.select(User.id).where(User.email == "payg@example.com"))
        db.add(
            PackBalance(
                user_id=payg_id,
                source=BalanceSource.GRANT,
                label="Top-up",
                units=4,
                expires_at=dt.datetime(2027, 12, 7, 12, tzinfo=dt.UTC),
            )
        )
        db.commit()
        other.goto(f"{base}/chat")
        expect(other.locator("#quota-note")).to_contain_text("Drawing on your packs")
        expect(other.locator("#no-plan")).to_be_hidden()
        other.select_option("#model", "demo/demo-pro")
        other.select_option("#resolution", "square")
        expect(other.locator("#cost-line")).to_have_text(f"1 image {TIMES} 3 units = 3 units")
        other.fill("#prompt", "a lantern in the snow")
        other.press("#prompt", "Enter")
        wait_for_images(other, other.locator(".turn").nth(0), 1)
        expect(other.locator("#quota-packs")).to_have_text(
            "Top-up: 1 unit left, expires 7 Dec 2027"
        )
        expect(other.locator("#send")).to_be_hidden()
        expect(other.locator("#renew")).to_have_text("Buy a pack")
        shot(other, "units-chat-pay-as-you-go")
    finally:
        payg.close()

    assert problems == []
    assert errors == [], f"JavaScript errors on the page: {errors}"
