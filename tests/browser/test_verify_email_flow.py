"""Email verification as a person meets it (DESIGN 4.12): the dashboard says the address is not
verified and sends a link; the link's page says it worked, or why it did not and what to do.
Every page at 1280 and 390 px and in the dark theme: no sideways scrolling, no serious
accessibility problem (axe-core), a screenshot each in ``test-artifacts/browser/``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from browser_support import look_at, sign_up
from nproxy_core.accounts import services
from nproxy_core.accounts.models import User

VIEWS = (
    ({"width": 1280, "height": 860}, "1280", "light"),
    ({"width": 390, "height": 844}, "390", "light"),
    ({"width": 1280, "height": 860}, "1280-dark", "dark"),
)


def look(page: Any, name: str, problems: list[str], open_page: Callable[[], None]) -> None:
    """``open_page`` at each width and theme: checked, and a screenshot each."""
    look_at(page, f"verify-email-{name}", problems, open_page, VIEWS)


def fresh_link(db: Any, base: str, email: str) -> str:
    """A new link for ``email``, as the mail would carry it (the worker's mailer is its own)."""
    db.expire_all()
    user = db.scalar(sa.select(User).where(User.email == email))
    token = services.start_email_verification(db, user)
    db.commit()
    return f"{base}/verify-email?token={token}"


def test_verifying_an_address_from_the_dashboard(live_stack: Any, page: Any, db: Any) -> None:
    from playwright.sync_api import expect

    base = live_stack.url
    problems: list[str] = []
    sign_up(page, base, "verify@example.com")
    # A new account lands on the plans (issue 26); the dashboard offers the verification.
    page.wait_for_url(f"{base}/pricing")
    page.goto(f"{base}/dashboard")
    expect(page.locator("#email-status")).to_have_text("Email not verified yet")
    look(page, "dashboard-unverified", problems, lambda: page.goto(f"{base}/dashboard"))

    page.get_by_role("button", name="Send verification link").click()
    page.wait_for_url(f"{base}/dashboard?done=verification-sent")
    expect(page.get_by_role("status")).to_contain_text("We sent a verification link")
    look(page, "dashboard-sent", problems, lambda: page.reload())

    def open_new_link() -> None:
        page.goto(fresh_link(db, base, "verify@example.com"))

    look(page, "verified", problems, open_new_link)
    expect(page.locator("#verify-email")).to_have_attribute("data-outcome", "verified")
    page.get_by_role("link", name="Go to your dashboard").click()
    expect(page.locator("#email-status")).to_have_text("Email verified")
    look(page, "dashboard-verified", problems, lambda: page.goto(f"{base}/dashboard"))

    unknown = f"{base}/verify-email?token={'A' * 43}"
    look(page, "invalid-verified-account", problems, lambda: page.goto(unknown))

    # Another account, not verified: a refused link offers a new one; logged out, to log in.
    page.context.clear_cookies()
    sign_up(page, base, "later@example.com")
    page.wait_for_url(f"{base}/pricing")
    look(page, "invalid", problems, lambda: page.goto(f"{base}/verify-email?token=not-a-token"))
    expect(page.get_by_role("button", name="Send a new verification link")).to_be_visible()
    page.context.clear_cookies()
    look(page, "invalid-logged-out", problems, lambda: page.goto(f"{base}/verify-email?token=x"))
    expect(page.get_by_role("link", name="Log in").last).to_be_visible()

    assert problems == [], "\n".join(problems)
