"""Fixtures for browser tests: the live stack (web + worker) and a headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from browser_support import ARTIFACTS, LiveStack, SharedStack

#: The settings of :func:`live_stack`'s stack, over the session's base settings.
LIVE_SETTINGS = {
    "nproxy.providers": "demo",
    "nproxy.payments": "demo",
    # Slow enough to see the progress state, fast enough for a short test.
    "demo.delay_seconds": "1.5",
    "demo.failure_rate": "0",
    # A small plan so that a few images visibly move the quota bucket (100 -> 80).
    "nproxy.plan.request_limit": "10",
}


@pytest.fixture(scope="module")
def module_stack(
    engine: Any, base_settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedStack]:
    """The stack of :func:`live_stack`, started once for the module's tests (see SharedStack)."""
    shared = SharedStack(
        {**base_settings, **LIVE_SETTINGS},
        tmp_path_factory.mktemp("stack"),
        f"nproxy_browser_{os.getpid()}",
        engine,
    )
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def live_stack(db: Any, module_stack: SharedStack) -> Iterator[LiveStack]:
    """The product as a person meets it: web + worker, demo provider and demo payments.

    The module's stack, with the rows it started with; depends on ``db`` so that every table
    is emptied after the test, once the worker has finished what the test gave it.
    """
    stack = module_stack.acquire()
    try:
        yield stack
    finally:
        module_stack.release()


@pytest.fixture
def browser(session_browser: Any) -> Iterator[Any]:
    """The session's Chromium; every context the test opens (each a fresh profile: cookies,
    storage, cache) is closed after it."""
    try:
        yield session_browser
    finally:
        for context in list(session_browser.contexts):
            context.close()


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
