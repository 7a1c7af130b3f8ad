"""Fixtures for browser tests: the live stack (web + worker) and a headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import ARTIFACTS, LiveStack, chromium, demo_stack


@pytest.fixture
def live_stack(db: Any, base_settings: dict[str, Any], tmp_path: Path) -> Iterator[LiveStack]:
    """The product as a person meets it: web + worker, demo provider and demo payments.

    Depends on ``db`` so that every table is emptied after the test, once the worker is gone.
    """
    settings = {
        **base_settings,
        "nproxy.providers": "demo",
        "nproxy.payments": "demo",
        # Slow enough to see the progress state, fast enough for a short test.
        "demo.delay_seconds": "1.5",
        "demo.failure_rate": "0",
        # A small plan so that a few images visibly move the quota bucket (100 -> 80).
        "nproxy.plan.request_limit": "10",
    }
    with demo_stack(settings, tmp_path, f"nproxy_browser_{os.getpid()}") as stack:
        yield stack


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, with a fresh profile; never a downloaded browser."""
    with chromium() as browser:
        yield browser


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Keep each phase's report on the item, so fixtures can tell that the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A desktop-sized page in a fresh context; a failed test leaves a screenshot behind."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"failure-{request.node.name}.png"))
        context.close()
