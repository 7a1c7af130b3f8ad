"""What the browser tests share: the real app served over HTTP, a real Celery worker process
on RabbitMQ, and how to launch Debian's headless Chromium.

The whole stack is real: PostgreSQL (the session's test database), RabbitMQ (a virtual host of
this run's own, so runs side by side never steal each other's jobs), the demo provider with a
small delay and the demo payment processor. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import waitress.server
from playwright.sync_api import Error as PlaywrightError

from apiclient import PASSWORD
from cli_runner import NPROXY, write_ini
from nproxy_core.config import configure
from nproxy_core.db import IDatabase
from nproxy_core.wiring import find_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"
RABBIT = "amqp://guest:guest@127.0.0.1:5672"
WORKER_START_SECONDS = 30


class RabbitVhost:
    """A RabbitMQ virtual host for one test run, removed afterwards.

    Falls back to the default vhost when ``rabbitmqctl`` cannot be used (not root, say): the
    test still runs, it is merely not isolated from a parallel run.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.created = False

    def __enter__(self) -> str:
        ctl = shutil.which("rabbitmqctl")
        if ctl is not None:
            try:
                subprocess.run([ctl, "add_vhost", self.name], check=True, capture_output=True)
                subprocess.run(
                    [ctl, "set_permissions", "-p", self.name, "guest", ".*", ".*", ".*"],
                    check=True,
                    capture_output=True,
                )
                self.created = True
            except (subprocess.CalledProcessError, OSError):
                self.created = False
        return f"{RABBIT}/{self.name}" if self.created else f"{RABBIT}//"

    def __exit__(self, *exc: Any) -> None:
        if self.created:
            subprocess.run(
                ["rabbitmqctl", "delete_vhost", self.name], check=False, capture_output=True
            )


class LiveStack:
    """The web app behind waitress on 127.0.0.1 plus one ``nproxy worker`` subprocess."""

    def __init__(self, settings: dict[str, Any], workdir: Path) -> None:
        self.server = waitress.server.create_server(
            lambda environ, start: self.app(environ, start),
            host="127.0.0.1",
            port=0,
            threads=32,
        )
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        # Payment callbacks and the demo checkout link are built on the public URL.
        self.settings = {**settings, "nproxy.public_url": self.url}
        self.workdir = workdir
        self.ini = workdir / "browser.ini"
        self.worker_log = ARTIFACTS / "worker.log"
        self.worker: subprocess.Popen[bytes] | None = None
        self.app: Any = None
        self.registry: Any = None
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def write_ini(self) -> None:
        write_ini(self.ini.parent, self.settings, self.ini.name)

    def nproxy(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*NPROXY, "-c", str(self.ini), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self, *, worker: bool = True) -> None:
        """Serve the app; and with ``worker``, start the worker (pages alone need none)."""
        self.write_ini()
        config = configure(self.settings)
        self.registry = config.registry
        self.app = config.make_wsgi_app()
        self.thread.start()
        if worker:
            self.start_worker()

    def start_worker(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log = self.worker_log.open("wb")
        self.worker = subprocess.Popen(
            [*NPROXY, "-c", str(self.ini), "worker", "--concurrency", "8"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + WORKER_START_SECONDS
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise RuntimeError(f"the worker exited early; see {self.worker_log}")
            # Celery logs "celery@host ready." once it consumes from the queue.
            if b" ready." in self.worker_log.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the worker did not get ready; see {self.worker_log}")

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(timeout=5)
        self.server.close()
        with contextlib.suppress(Exception):
            self.server.task_dispatcher.shutdown()
        self.thread.join(timeout=10)
        if self.registry is not None:
            from nproxy_core.generation.interfaces import ICompletionSignal

            find_service(self.registry, ICompletionSignal).close()
            find_service(self.registry, IDatabase).engine.dispose()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, with a fresh profile; never a downloaded browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def demo_stack(settings: dict[str, Any], workdir: Path, vhost: str) -> Iterator[LiveStack]:
    """A :class:`LiveStack` with ``settings`` on a RabbitMQ virtual host of its own
    (``vhost``), a key for the demo provider added the way an operator would, and its worker
    running; stopped afterwards."""
    with RabbitVhost(vhost) as broker_url:
        stack = LiveStack({**settings, "celery.broker_url": broker_url}, workdir)
        try:
            stack.write_ini()
            # The pool needs a key for the demo provider, added the way an operator would.
            added = stack.nproxy(
                "keys", "add", "--provider", "demo", "--label", "browser", stdin="demo-key-1\n"
            )
            assert added.returncode == 0, added.stderr or added.stdout
            stack.start()
            yield stack
        finally:
            stack.stop()


#: axe-core, installed from package.json (``npm ci``); injected into pages by the tests.
AXE_JS = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"


def axe_problems(page: Any) -> list[str]:
    """Serious and critical accessibility violations axe-core finds on the page as it is.

    Without axe-core installed the check is skipped, except where ``NPROXY_REQUIRE_AXE`` is
    set (``.ci/run``), where that is a failure: CI must never pass by not looking.
    """
    import os

    import pytest

    if not AXE_JS.exists():
        message = f"axe-core is not installed ({AXE_JS}): run `npm ci` in the repository"
        if os.environ.get("NPROXY_REQUIRE_AXE"):
            pytest.fail(message)
        pytest.skip(message)
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # As a script evaluated by the page: the CSP forbids adding a <script> element.
        page.evaluate(AXE_JS.read_text())
    results = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => `${v.impact} ${v.id}: ${v.help} — `"
        " + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))"
    )
    return [f"{page.url}: {line}" for line in results]


def sideways_scroll(page: Any) -> int:
    """How far the page scrolls sideways (0 when it fits the window)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


#: How long a browser test waits for a generation to finish (demo provider, a real worker).
GENERATION_TIMEOUT_MS = 30_000


def shot(page: Any, name: str, *, full_page: bool = False) -> None:
    """A screenshot in ``test-artifacts/browser/``, to look at the page as a person would."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = str(ARTIFACTS / f"{name}.png")
    try:
        page.screenshot(path=path, full_page=full_page)
    except PlaywrightError as exc:
        # Chromium now and then fails a capture on a loaded machine ("Unable to capture
        # screenshot"); the page is unchanged, so one more try tells a hiccup from a fault.
        if "Unable to capture screenshot" not in str(exc):
            raise
        page.screenshot(path=path, full_page=full_page)


def wait_for_images(page: Any, turn: Any, count: int) -> None:
    """Until the chat turn has succeeded and the browser decoded its ``count`` images."""
    from playwright.sync_api import expect

    expect(turn).to_have_attribute("data-state", "succeeded", timeout=GENERATION_TIMEOUT_MS)
    expect(turn.locator(".tile img")).to_have_count(count)
    page.wait_for_function(
        "([el, n]) => [...el.querySelectorAll('.tile img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length === n",
        arg=[turn.element_handle(), count],
        timeout=10_000,
    )


def submit_credentials(page: Any, email: str, password: str = PASSWORD) -> None:
    """Fill the log-in or sign-up form on the page and send it."""
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form button[type=submit]")


def log_in(page: Any, base: str, email: str, *, landing: str = "/dashboard") -> None:
    """Log in through /login as a person would, and wait to land on ``landing``."""
    page.goto(f"{base}/login")
    submit_credentials(page, email)
    page.wait_for_url(f"{base}{landing}")


def sign_up(page: Any, base: str, email: str) -> None:
    """Make an account through /register (the caller waits for where it lands)."""
    page.goto(f"{base}/register")
    submit_credentials(page, email)


#: (viewport, label, colour scheme) a page is looked at in by :func:`look_at`.
View = tuple[dict[str, int], str, str]


def look_at(
    page: Any,
    name: str,
    problems: list[str],
    open_page: Callable[[], None],
    views: Iterable[View],
) -> None:
    """``open_page`` at each width and theme of ``views``: sideways scrolling and serious axe
    findings go to ``problems``, and a full-page screenshot ``{name}-{label}`` each."""
    for size, label, scheme in views:
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size(size)
        open_page()
        page.wait_for_load_state("networkidle")
        overflow = sideways_scroll(page)
        if overflow > 0:
            problems.append(f"{page.url} scrolls sideways by {overflow}px at {label}")
        shot(page, f"{name}-{label}", full_page=True)
        problems.extend(axe_problems(page))


def check_here(page: Any, name: str, problems: list[str], *, prefix: str) -> None:
    """The page as it is now: sideways scrolling and serious axe findings go to ``problems``,
    and a screenshot ``{prefix}-{name}``."""
    overflow = sideways_scroll(page)
    if overflow > 0:
        problems.append(f"{page.url} scrolls sideways by {overflow}px ({name})")
    shot(page, f"{prefix}-{name}")
    problems.extend(axe_problems(page))
