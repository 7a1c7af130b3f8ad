"""What the browser tests share: the real app served over HTTP, a real Celery worker process
on RabbitMQ, and how to launch Debian's headless Chromium.

The whole stack is real: PostgreSQL (the session's test database), RabbitMQ (a virtual host of
this run's own, so runs side by side never steal each other's jobs), the demo provider with a
small delay and the demo payment processor. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import waitress.server
from playwright.sync_api import Error as PlaywrightError

import cli_runner
from apiclient import PASSWORD
from cli_runner import NPROXY, write_ini
from conftest import release_registry
from generation_support import AMQP_BASE, add_vhost, delete_vhost, idle_in_time
from live_support import stop_server
from nproxy_core.config import configure
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
WORKER_START_SECONDS = 30


class RabbitVhost:
    """A RabbitMQ virtual host for one test run, removed afterwards.

    Falls back to the default vhost when none can be made (no management API and
    ``rabbitmqctl`` not usable, not root say): the test still runs, it is merely not isolated
    from a parallel run.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.created = False

    def __enter__(self) -> str:
        try:
            add_vhost(self.name)
            self.created = True
        except (httpx.HTTPError, subprocess.SubprocessError, OSError):
            self.created = False
        return f"{AMQP_BASE}/{self.name}" if self.created else f"{AMQP_BASE}//"

    def __exit__(self, *exc: Any) -> None:
        if self.created:
            with contextlib.suppress(httpx.HTTPError, subprocess.SubprocessError, OSError):
                delete_vhost(self.name)


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
        # A log of its own: stacks run side by side (a module's and a test's, other xdist
        # workers'), and the start waits for this worker's own "ready".
        self.worker_log = ARTIFACTS / f"worker-{os.getpid()}-{workdir.name}.log"
        self.worker: subprocess.Popen[bytes] | None = None
        self.app: Any = None
        self.registry: Any = None
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def write_ini(self) -> None:
        write_ini(self.ini.parent, self.settings, self.ini.name)

    def nproxy(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``nproxy -c <this stack's ini> ARGS`` as an operator runs it (in this process, through
        click's runner: see ``cli_runner``)."""
        return cli_runner.nproxy("-c", str(self.ini), *args, stdin=stdin or "")

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
        stop_server(self.server, self.thread)
        if self.registry is not None:
            release_registry(self.registry)


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


class SharedStack:
    """One :func:`demo_stack` for the tests of a module, each test starting from the rows the
    stack had when it started, as if it were the test's own.

    Starting a stack (server, worker process, vhost, the operator's key) costs seconds of CPU
    a test; this keeps one running instead. What a test may leave behind is undone by
    :meth:`acquire`, for the next one: the ``db`` fixture has emptied every table after the
    previous test, so the rows the stack made when it started (its key, its worker's liveness
    row, their audit entries) and the sequences as they stood are put back, and the web app's
    in-memory rate limits forgotten. :meth:`release` waits until the worker has nothing in
    hand, as the warm shutdown of a test's own worker did, before the tables are emptied;
    a worker still busy after that is stopped, and the next test gets a new stack.
    """

    def __init__(self, settings: dict[str, Any], workdir: Path, vhost: str, engine: Any) -> None:
        self.settings = settings
        self.workdir = workdir
        self.vhost = vhost
        self.engine = engine
        self._running: contextlib.ExitStack | None = None
        self._stack: LiveStack | None = None
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._sequences: list[tuple[str, int, bool]] = []

    def acquire(self) -> LiveStack:
        if self._stack is None:
            running = contextlib.ExitStack()
            self._stack = running.enter_context(demo_stack(self.settings, self.workdir, self.vhost))
            self._running = running
            self._take_snapshot()
        else:
            self._put_back_snapshot()
            _forget_rate_limits(self._stack.registry)
        return self._stack

    def release(self) -> None:
        """Wait until no job is unfinished and the worker holds no task; stop the stack when
        that does not come within ``generation_support.IDLE_SECONDS``."""
        if self._stack is not None and not idle_in_time(self.engine, self.vhost):
            self.close()

    def close(self) -> None:
        if self._running is not None:
            self._running.close()
        self._running = None
        self._stack = None

    def _take_snapshot(self) -> None:
        import sqlalchemy as sa

        from nproxy_core.db import import_models

        with self.engine.connect() as conn:
            self._rows = {
                table.name: [dict(row) for row in conn.execute(table.select()).mappings()]
                for table in import_models().sorted_tables
            }
            self._sequences = [
                (name, int(last), bool(called))
                for name, last, called in conn.execute(sa.text(_SEQUENCE_STATES))
            ]

    def _put_back_snapshot(self) -> None:
        import sqlalchemy as sa
        from sqlalchemy.dialects.postgresql import insert

        from nproxy_core.db import import_models, utcnow
        from nproxy_core.health.models import WorkerProcess

        with self.engine.begin() as conn:
            for table in import_models().sorted_tables:
                rows = self._rows.get(table.name)
                if rows:
                    # The migrations' own rows are back already (the ``db`` fixture's clean-up).
                    conn.execute(insert(table).on_conflict_do_nothing(), rows)
            for name, last, called in self._sequences:
                conn.execute(sa.select(sa.func.setval(name, last, called)))
            # Its worker has beaten all along: the row says so, as it would have.
            conn.execute(sa.update(WorkerProcess).values(last_seen_at=utcnow()))


_SEQUENCE_STATES = (
    "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename),"
    " coalesce(last_value, start_value), last_value IS NOT NULL"
    " FROM pg_sequences WHERE schemaname = current_schema()"
)


def _forget_rate_limits(registry: Any) -> None:
    """The app's in-memory rate limits, counted afresh (as in a newly built app)."""
    from zope.interface import Interface

    from nproxy_core.developer_api.interfaces import IApiRateLimiter

    find_service(registry, Interface, name="ratelimiter").reset()
    find_service(registry, IApiRateLimiter).reset()


#: axe-core, installed from package.json (``npm ci``); injected into pages by the tests.
AXE_JS = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"


def axe_problems(page: Any) -> list[str]:
    """Serious and critical accessibility violations axe-core finds on the page as it is.

    Without axe-core installed the check is skipped, except where ``NPROXY_REQUIRE_AXE`` is
    set (``.ci/run``), where that is a failure: CI must never pass by not looking.
    """
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
