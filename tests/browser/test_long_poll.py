"""In a real browser, the chat follows a generation with one long poll, answered the moment the
image exists; when a held request is cut, it falls back to plain polling and still shows it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from apiclient import PASSWORD
from browser_support import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]

POLL = re.compile(r"/api/v1/generations/[0-9a-f-]{36}(\?.*)?$")


@pytest.fixture
def chat(live_stack: Any, page: Any, user_factory: Any, make_cycle: Any) -> Any:
    """The chat page of a paying user, logged in, in a new conversation."""
    user = user_factory()
    make_cycle(user)
    base = live_stack.url
    page.goto(f"{base}/login")
    page.fill("#email", user.email)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/dashboard")
    page.goto(f"{base}/chat")
    page.click("#new-chat")
    return page


def send(page: Any, prompt: str) -> Any:
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")
    return page.locator(".turn").last


def test_one_long_poll_per_generation_shows_the_image(chat: Any) -> None:
    from playwright.sync_api import expect

    page = chat
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if POLL.search(r.url) else None)

    turn = send(page, "a lighthouse at dusk")
    expect(turn).to_have_attribute("data-state", "succeeded", timeout=30_000)
    expect(turn.locator(".tile img")).to_have_count(1)
    # The demo provider takes 1.5 s: one held request carried the whole wait.
    assert len(polls) == 1, polls
    assert polls[0].endswith("?wait=25")


def test_a_cut_long_poll_falls_back_to_plain_polling(chat: Any) -> None:
    from playwright.sync_api import expect

    page = chat
    polls: list[str] = []

    def cut_held_requests(route: Any) -> None:
        polls.append(route.request.url)
        if "wait=" in route.request.url:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(POLL, cut_held_requests)
    turn = send(page, "a lighthouse at dawn")
    expect(turn).to_have_attribute("data-state", "succeeded", timeout=30_000)
    expect(turn.locator(".tile img")).to_have_count(1)
    assert "wait=" in polls[0]
    # After the cut: plain polls only, not a retry loop of held requests.
    assert len(polls) >= 2
    assert all("wait=" not in url for url in polls[1:]), polls
