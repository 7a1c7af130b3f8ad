"""The web pages of the customer bot in a real browser: the account page's Telegram section
(link, the link made, linked) and the /web login page (ask, used), at 1280 and 390 px and in
the dark theme: no sideways scrolling, no serious accessibility problem (axe-core)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import (
    LiveStack,
    axe_problems,
    look_at,
    shot,
    submit_credentials,
)
from customerbot.conftest import BOT_USERNAME
from nproxy_core.customerbot import services

VIEWS = (
    ({"width": 1280, "height": 860}, "1280", "light"),
    ({"width": 390, "height": 844}, "390", "light"),
    ({"width": 390, "height": 844}, "390-dark", "dark"),
)


@pytest.fixture
def stack(db: Any, base_settings: dict[str, Any], tmp_path: Path) -> Iterator[LiveStack]:
    settings = {**base_settings, "telegram.customer_bot_username": BOT_USERNAME}
    live = LiveStack(settings, tmp_path)
    try:
        live.write_ini()
        live.start(worker=False)
        yield live
    finally:
        live.stop()


@pytest.fixture
def page(session_browser: Any) -> Iterator[Any]:
    context = session_browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def look(page: Any, name: str, problems: list[str], open_page: Callable[[], None]) -> None:
    look_at(page, f"customerbot-{name}", problems, open_page, VIEWS)


def test_the_telegram_pages(stack: LiveStack, page: Any, db: Any, user_factory: Any) -> None:
    base = stack.url
    problems: list[str] = []
    user_factory("linker@example.com")
    page.goto(f"{base}/login")
    submit_credentials(page, "linker@example.com")
    page.wait_for_load_state("networkidle")
    look(page, "dashboard-link", problems, lambda: page.goto(f"{base}/dashboard"))
    page.click("#telegram-link-form button")
    page.wait_for_selector("#telegram-link")
    assert page.locator("#telegram-link").inner_text().startswith(f"https://t.me/{BOT_USERNAME}")
    shot(page, "customerbot-dashboard-link-made-1280", full_page=True)
    problems.extend(axe_problems(page))

    found, _ = services.open_account(db, services.TelegramUser(4401, 4401, "tg"))
    token = services.make_login_token(db, found.user)
    db.commit()
    page.context.clear_cookies()
    look(page, "login-ask", problems, lambda: page.goto(f"{base}/telegram/login/{token}"))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/dashboard")
    look(page, "dashboard-telegram-only", problems, lambda: page.goto(f"{base}/dashboard"))
    look(page, "login-used", problems, lambda: page.goto(f"{base}/telegram/login/{token}"))
    assert problems == [], "\n".join(problems)
