"""A card subscription as a person meets it on the account page (DESIGN 4.16): buy the plan
with Stripe (the fake), see "Renews on", open "Manage subscription" (the billing portal), press
"Cancel renewal" and see "Ends on", and find every payment on /billing. Each page at 1280 and
390 px and in the dark theme: no sideways scrolling, no serious accessibility problem, a
screenshot each in ``test-artifacts/browser/``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from browser_support import LiveStack, look_at, sign_up
from fakes.stripe import FakeStripe, deliver
from nproxy_core.billing.models import Subscription, SubscriptionState

pytestmark = pytest.mark.browser

VIEWS = (
    ({"width": 1280, "height": 860}, "1280", "light"),
    ({"width": 390, "height": 844}, "390", "light"),
    ({"width": 1280, "height": 860}, "1280-dark", "dark"),
    ({"width": 390, "height": 844}, "390-dark", "dark"),
)


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


@pytest.fixture
def stack(db: Any, base_settings: dict[str, Any], tmp_path: Path, fake: FakeStripe) -> Any:
    """The web app selling through the fake Stripe (pages need no worker)."""
    settings = {
        **base_settings,
        "nproxy.payments": "stripe demo",
        "stripe.api_base": fake.api_base,
        "stripe.secret_key": fake.secret_key,
        "stripe.webhook_secret": fake.webhook_secret,
        "stripe.timeout_seconds": "5",
    }
    live = LiveStack(settings, tmp_path)
    try:
        live.start(worker=False)
        yield live
    finally:
        live.stop()


def look(page: Any, name: str, problems: list[str], open_page: Callable[[], None]) -> None:
    look_at(page, f"subscription-{name}", problems, open_page, VIEWS)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 860})


def test_buy_manage_and_cancel_a_card_subscription(stack: Any, page: Any, fake: Any, db: Any):
    from playwright.sync_api import expect

    base = stack.url
    problems: list[str] = []
    # Stripe's own pages are not ours to load: the browser stops at their addresses.
    page.route(
        "https://checkout.stripe.com/**",
        lambda route: route.fulfill(status=200, body="Stripe Checkout", content_type="text/plain"),
    )
    page.route(
        "https://billing.stripe.com/**",
        lambda route: route.fulfill(status=200, body="Stripe portal", content_type="text/plain"),
    )
    sign_up(page, base, "subscriber@example.com")
    page.wait_for_load_state("networkidle")

    page.goto(f"{base}/pricing")
    expect(page.locator("#plan-monthly")).to_contain_text("renews every month until you cancel")
    look(page, "pricing", problems, lambda: page.goto(f"{base}/pricing"))
    page.select_option("#processor", "stripe")
    page.locator("#checkout-form button[type=submit]").click()
    page.wait_for_url("https://checkout.stripe.com/**")
    [session] = fake.sessions
    assert session["mode"] == "subscription"

    # The buyer paid on Stripe's page; Stripe tells nproxy.
    for event in fake.complete_checkout(session["id"]):
        answer = deliver(f"{base}/billing/webhooks/stripe", event, fake.webhook_secret)
        assert answer.status == 200, answer.body

    page.goto(f"{base}/dashboard")
    section = page.locator("#subscription")
    expect(section.locator("#plan-ends")).to_contain_text("Renews on")
    expect(section.get_by_role("button", name="Manage subscription")).to_be_visible()
    expect(section.get_by_role("button", name="Cancel renewal")).to_be_visible()
    look(page, "dashboard-renewing", problems, lambda: page.goto(f"{base}/dashboard"))

    section.get_by_role("button", name="Manage subscription").click()
    page.wait_for_url("https://billing.stripe.com/p/session/**")
    portal = next(r for r in fake.requests if r.path == "/v1/billing_portal/sessions").form()
    assert portal["return_url"] == f"{base}/dashboard"

    page.goto(f"{base}/dashboard")
    page.get_by_role("button", name="Cancel renewal").click()
    page.wait_for_url(f"{base}/dashboard?done=renewal-cancelled#subscription")
    expect(page.locator("#renewal-flash")).to_contain_text("Renewal cancelled")
    expect(page.locator("#plan-ends")).to_contain_text("Ends on")
    expect(page.get_by_role("button", name="Cancel renewal")).to_have_count(0)
    look(page, "dashboard-cancelled", problems, lambda: page.reload())
    db.expire_all()
    assert db.scalar(sa.select(Subscription.state)) == SubscriptionState.ENDING

    page.goto(f"{base}/billing")
    expect(page.locator("#payments")).to_contain_text("Card (Stripe)")
    expect(page.locator("#subscription")).to_contain_text("ends on")
    look(page, "history", problems, lambda: page.goto(f"{base}/billing"))

    assert not problems, "\n".join(problems)
