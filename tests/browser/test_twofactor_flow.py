"""Two-factor login as an admin meets it in a browser, with ``nproxy.admin.require_2fa`` on:
the admin is sent to set it up before the admin opens, scans (here: reads) the key, confirms
with a code computed as an authenticator app would, saves the recovery codes, logs out, and
logs in again with password and code; a recovery code works too. Every page at 1280 and
390 px in both themes: no sideways scroll, nothing serious for axe, a screenshot each in
``test-artifacts/browser/`` (``twofactor-*``)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from apiclient import PASSWORD
from browser_support import CHROMIUM, LiveStack, axe_problems, shot, sideways_scroll

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]

ADMIN = "twofa-admin@example.com"
VIEWS = [(1280, 860, "light"), (1280, 860, "dark"), (390, 844, "light"), (390, 844, "dark")]


@pytest.fixture
def stack(db: Any, base_settings: dict[str, Any], tmp_path: Path) -> Iterator[LiveStack]:
    stack = LiveStack({**base_settings, "nproxy.admin.require_2fa": "true"}, tmp_path)
    try:
        stack.start(worker=False)
        yield stack
    finally:
        stack.stop()


def look(page: Any, name: str, problems: list[str]) -> None:
    """The page as it is, at each width and theme: checked, and a screenshot each."""
    for width, height, scheme in VIEWS:
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size({"width": width, "height": height})
        overflow = sideways_scroll(page)
        if overflow > 0:
            problems.append(f"{page.url} scrolls sideways by {overflow}px at {width} {scheme}")
        # From the top: a focused field lower down scrolls the page, and the sticky top
        # bar would cover the middle of the full-page picture.
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, f"twofactor-{name}-{width}-{scheme}", full_page=True)
        problems.extend(axe_problems(page))
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 860})


def app_code(secret: str, steps: int = 0) -> str:
    """The code the authenticator app shows (``steps`` steps ahead), typed well inside its
    30 seconds: waits, on the clock, while the step is about to change."""
    deadline = time.monotonic() + 5
    while time.time() % 30 > 27 and time.monotonic() < deadline:
        time.sleep(0.05)
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30 * steps)
    return pyotp.TOTP(secret).at(moment)


def log_in(page: Any, base: str, problems: list[str] | None = None) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/admin")
    page.wait_for_url(f"{base}/login?next=%2Fadmin")
    expect(page.locator("#email")).to_be_focused()
    if problems is not None:
        look(page, "login", problems)
    page.fill("#email", ADMIN)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")


def test_an_admin_sets_up_two_factor_login_and_logs_in_with_a_code(
    stack: LiveStack, browser: Any, user_factory: Any
) -> None:
    from playwright.sync_api import expect

    admin = user_factory(ADMIN, admin=True)
    base, problems = stack.url, []
    page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()

    # The password alone opens no admin page: the admin is sent to set up two-factor login.
    log_in(page, base, problems)
    page.wait_for_url(f"{base}/account/2fa?next=%2Fadmin")
    expect(page.locator("#required")).to_contain_text("Admins must use two-factor login")
    look(page, "required", problems)

    page.get_by_role("button", name="Set up two-factor login").click()
    page.wait_for_url(f"{base}/account/2fa?next=%2Fadmin")
    expect(
        page.get_by_role("img", name="QR code to scan with your authenticator app")
    ).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    assert len(secret) == 32
    expect(page.locator("#otp")).to_be_focused()
    look(page, "enrol", problems)

    page.fill("#otp", app_code(secret))
    page.get_by_role("button", name="Turn on two-factor login").click()
    codes = page.locator("#recovery-codes li code").all_inner_texts()
    assert len(codes) == 10
    look(page, "recovery-codes", problems)

    # Saved: on to where the admin was going.
    page.get_by_role("link", name="I saved them — continue").click()
    page.wait_for_url(f"{base}/admin")
    page.get_by_role("button", name="Log out", exact=True).click()
    page.wait_for_url(f"{base}/")

    # Password, then the code of the app (the next step: the current one was just used).
    log_in(page, base)
    page.wait_for_url(f"{base}/login/otp?next=%2Fadmin")
    expect(page.locator("#otp")).to_be_focused()
    code_field = page.locator("#otp")
    expect(code_field).to_have_attribute("inputmode", "numeric")
    expect(code_field).to_have_attribute("autocomplete", "one-time-code")
    look(page, "login-code", problems)
    page.fill("#otp", "000000" if app_code(secret, 1) != "000000" else "111111")
    page.click("main button[type=submit]")
    expect(page.locator("#form-error")).to_contain_text("not right")
    expect(page.locator("#otp")).to_be_focused()
    look(page, "login-code-wrong", problems)
    page.fill("#otp", app_code(secret, 1))
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/admin")

    page.goto(f"{base}/account/2fa")
    expect(page.locator("#two-factor")).to_have_attribute("data-state", "on")
    expect(page.locator("#recovery-left")).to_contain_text("10 of 10 recovery codes left")
    look(page, "on", problems)
    page.goto(f"{base}/dashboard")
    expect(page.locator("#two-factor-login")).to_have_attribute("data-enabled", "true")
    look(page, "dashboard", problems)

    # A lost phone: a recovery code logs in, once.
    page.get_by_role("button", name="Log out", exact=True).click()
    page.wait_for_url(f"{base}/")
    log_in(page, base)
    page.wait_for_url(f"{base}/login/otp?next=%2Fadmin")
    page.fill("#otp", codes[0])
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/admin")
    page.goto(f"{base}/account/2fa")
    expect(page.locator("#recovery-left")).to_contain_text("9 of 10 recovery codes left")
    # The admin's page about the account says it too.
    page.goto(f"{base}/admin/users/{admin.id}")
    expect(page.locator("#two-factor")).to_have_text("on, 9 recovery codes left")
    look(page, "admin-user", problems)

    assert problems == []
