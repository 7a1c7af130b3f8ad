"""An operator runs the business from /admin in a real browser: a customer's partial payment is
flagged and a Gemini key is rejected (by the fake Gemini) during a real generation; the admin
logs in, sees the overview with its charts, tests and restores the key, resolves the payment,
and the customer's next image goes through the restored key.

Screenshots of every admin page at 1280 and 390 px wide land in ``test-artifacts/browser/``
(``admin-*``); look at them after a change to the admin.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import browser_support
from browser_support import CHROMIUM, LiveStack, RabbitVhost, axe_problems
from fakes.gemini import FakeGemini, fake_gemini

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    # A hang guard, not a measure: every admin page in three views with axe takes about a minute
    # alone and past three beside the suite's process-starting tests on two cores.
    pytest.mark.timeout(540),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]

ADMIN = "operator@example.com"
CUSTOMER = "customer@example.com"
PASSWORD = "correct horse battery"
GEMINI_KEY = "AIzaSyBROWSERtestBROWSERtestBROWSER01"
TIMEOUT_MS = 30_000


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with fake_gemini() as server:
        yield server


@pytest.fixture
def stack(db: Any, base_settings: dict[str, Any], tmp_path: Path, gemini: FakeGemini) -> Any:
    """Web + worker with the demo provider and Nano Banana (the fake Gemini), demo payments."""
    with RabbitVhost(f"nproxy_admin_browser_{os.getpid()}") as broker_url:
        stack = LiveStack(
            {
                **base_settings,
                "celery.broker_url": broker_url,
                "nproxy.providers": "demo nanobanana",
                "nproxy.payments": "demo",
                "nanobanana.api_base": gemini.base_url,
                "nanobanana.timeout_seconds": "10",
                "demo.delay_seconds": "0.3",
                "nproxy.worker.heartbeat_seconds": "2",
            },
            tmp_path,
        )
        try:
            stack.write_ini()
            for args, stdin in [
                (("users", "create", ADMIN, "--admin", "--password-stdin"), PASSWORD + "\n"),
                (("keys", "add", "--provider", "demo", "--label", "demo-1"), "demo-key-browser\n"),
                (
                    (
                        "keys",
                        "add",
                        "--provider",
                        "nanobanana",
                        "--label",
                        "gemini-main",
                        "--project",
                        "gcp-acme",
                        "--billing-group",
                        "acme",
                    ),
                    GEMINI_KEY + "\n",
                ),
                (("proxies", "add", "http://user:pw@127.0.0.1:3128", "--label", "eu-west"), ""),
            ]:
                done = stack.nproxy(*args, stdin=stdin)
                assert done.returncode == 0, done.stderr or done.stdout
            stack.start()
            yield stack
        finally:
            stack.stop()


#: Admin pages are long tables: their screenshots show the whole page.
shot = functools.partial(browser_support.shot, full_page=True)


def log_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboard$"))


def generate(page: Any, model: str, prompt: str) -> Any:
    """Send a prompt in the chat with ``model``; the turn, once it settled."""
    from playwright.sync_api import expect

    page.select_option("#model", model)
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")
    turn = page.locator(".turn").last
    expect(turn).not_to_have_attribute("data-state", "pending", timeout=TIMEOUT_MS)
    return turn


def test_an_operator_restores_a_rejected_key_and_resolves_a_flagged_payment(
    stack: LiveStack, browser: Any, gemini: FakeGemini
) -> None:
    from playwright.sync_api import expect

    base = stack.url
    gemini.behave(GEMINI_KEY, "invalid_key")
    errors: list[str] = []

    # The customer: registers, pays only part of the price (flagged for review), gets a free
    # cycle from the console, makes one demo image, then meets the rejected Gemini key.
    customer = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    customer.on("pageerror", lambda exc: errors.append(str(exc)))
    customer.goto(f"{base}/register")
    customer.fill("#email", CUSTOMER)
    customer.fill("#password", PASSWORD)
    customer.click("form button[type=submit]")
    customer.wait_for_url(f"{base}/pricing")
    customer.goto(f"{base}/pricing")
    customer.select_option("#processor", "demo")
    customer.click("#checkout button[type=submit]")
    customer.wait_for_url(re.compile(r"/billing/demo/checkout/"))
    customer.click("button[value=partially_paid]")
    expect(customer.locator("#payment")).to_have_attribute("data-status", "partially_paid")
    granted = stack.nproxy("users", "grant-cycle", CUSTOMER, "--reason", "trial while we check")
    assert granted.returncode == 0, granted.stderr

    customer.goto(f"{base}/chat")
    customer.click("#new-chat")
    expect(customer.locator("#model option")).to_have_count(4)
    made = generate(customer, "demo/demo-image-1", "a lighthouse at dusk")
    expect(made).to_have_attribute("data-state", "succeeded")
    failed = generate(customer, "nanobanana/gemini-2.5-flash-image", "a harbour at dawn")
    expect(failed).to_have_attribute("data-state", "failed")
    expect(failed).to_contain_text("temporarily unavailable")

    # The operator, on a desktop.
    admin = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    admin.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(admin, base, ADMIN)
    admin.click("header nav >> text=Admin")
    admin.wait_for_url(f"{base}/admin")
    pool = admin.locator("#key-pool tr[data-provider='nanobanana']")
    expect(pool.locator("td[data-state='manual_review']")).to_have_text("1")
    expect(admin.locator("#review .stat")).to_have_text("1")
    expect(admin.locator("#workers")).to_have_attribute("data-alive", "1")
    expect(admin.locator("#chart-images rect.s-success")).not_to_have_count(0)
    expect(admin.locator("#chart-images rect.s-unavailable")).not_to_have_count(0)
    expect(admin.locator("#chart-attempts rect.s-unavailable")).not_to_have_count(0)
    expect(admin.locator("#chart-latency rect.s-p95")).not_to_have_count(0)
    shot(admin, "admin-01-overview")

    # The key: in review with Google's reason; a free check now passes (the operator fixed
    # the key at Google), which does not restore it; the restore does.
    admin.click(".admin-nav >> text=Keys")
    row = admin.locator("#key-list tr", has_text="gemini-main")
    expect(row).to_have_attribute("data-state", "manual_review")
    shot(admin, "admin-02-keys")
    row.locator("a").first.click()
    expect(admin.locator("#key")).to_contain_text("API key not valid")
    gemini.behave(GEMINI_KEY, "success")
    admin.click("#test-key button[type=submit]")
    # Accepted is not proven to make images: a neutral notice with the key's state beside it.
    notice = admin.locator("p.alert.info")
    expect(notice).to_contain_text("Key accepted; this does not prove it can generate images")
    expect(notice).to_contain_text("State: manual review, out of service")
    expect(admin.locator("p.alert.success")).to_have_count(0)
    expect(admin.locator("#key")).to_have_attribute("data-state", "manual_review")
    shot(admin, "admin-03-key-tested")
    admin.click("#key form button:text('Restore')")
    expect(admin.locator("p.alert.success")).to_contain_text("back in service")
    expect(admin.locator("#key")).to_have_attribute("data-state", "active")
    shot(admin, "admin-04-key-restored")

    # The flagged payment: from the badge in the navigation to the decision.
    admin.click(".admin-nav >> text=Payments")
    expect(admin.locator("h1")).to_have_text("Payments awaiting review")
    flagged = admin.locator("#payment-list tr[data-status='partially_paid']")
    expect(flagged).to_contain_text("partially paid")
    shot(admin, "admin-05-review-queue")
    flagged.locator("a").first.click()
    admin.check("input[name=decision][value=activate]")
    admin.fill("#note", "The rest arrived by bank transfer (ticket 981).")
    admin.click("#resolve button[type=submit]")
    expect(admin.locator("p.alert.success")).to_contain_text("activated")
    expect(admin.locator("#payment")).to_have_attribute("data-awaiting-review", "false")
    shot(admin, "admin-06-payment-resolved")

    # The restored key works for the customer again.
    again = generate(customer, "nanobanana/gemini-2.5-flash-image", "a harbour at dawn")
    expect(again).to_have_attribute("data-state", "succeeded")

    # Every page, desktop and phone.
    pages = {
        "overview": "/admin",
        "users": "/admin/users",
        "user": None,
        "payments": "/admin/payments",
        "payment": None,
        "generations": "/admin/generations",
        "generation": None,
        "keys": "/admin/keys",
        "proxies": "/admin/proxies",
        "health": "/admin/health",
        "audit": "/admin/audit",
        "telegram": "/admin/telegram",
        "plans": "/admin/plans",
        "packs": "/admin/packs",
        "pricing": "/admin/pricing",
    }
    admin.goto(f"{base}/admin/users?q=customer")
    pages["user"] = admin.locator("#users a").first.get_attribute("href")
    admin.goto(f"{base}/admin/payments")
    pages["payment"] = admin.locator("#payment-list a").first.get_attribute("href")
    admin.goto(f"{base}/admin/generations?status=failed")
    pages["generation"] = admin.locator("#generation-list a").first.get_attribute("href")
    problems: list[str] = []
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    dark = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="dark")
    night = dark.new_page()
    for view in (phone, night):
        view.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(view, base, ADMIN)
    for name, path in pages.items():
        for view, width in ((admin, "1280"), (phone, "390"), (night, "1280-dark")):
            view.goto(f"{base}{path}")
            expect(view.locator(".admin-nav")).to_be_visible()
            shot(view, f"admin-{width}-{name}")
            # Nothing wider than the screen but the charts' own scrolling area.
            overflow = view.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{name} at {width} px is {overflow} px too wide"
            problems.extend(axe_problems(view))
    assert errors == [], errors
    assert problems == [], "\n".join(problems)
