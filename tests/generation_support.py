"""What the generation tests share: worker and beat subprocesses, a private RabbitMQ node, an
API customer, and waiting for a job's state with a deadline."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import sqlalchemy as sa
import webtest
from sqlalchemy.orm import Session

import cli_runner
from apiclient import ApiClient
from cli_runner import NPROXY
from fakes.proxies import free_port, wait_for_port
from nproxy_core.billing.models import BillingCycle
from nproxy_core.generation.models import TERMINAL, Generation

RABBITMQCTL = "rabbitmqctl"
AMQP_BASE = os.environ.get("NPROXY_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
#: RabbitMQ's management HTTP API (the rabbitmq_management plugin), where test vhosts are made:
#: a request costs milliseconds, a ``rabbitmqctl`` call starts an Erlang VM (a CPU-second).
RABBIT_API = os.environ.get("NPROXY_TEST_RABBIT_API", "http://guest:guest@127.0.0.1:15672/api")

LOGGING_INI = """
[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s] %(message)s
"""


def rabbitmqctl(*args: str, node: str | None = None) -> None:
    command = [RABBITMQCTL, *(["-n", node] if node else []), "-q", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def _rabbit_admin(method: str, path: str, ctl: list[str], body: Any = None) -> None:
    """One change to the broker through its management API (:data:`RABBIT_API`); through
    ``rabbitmqctl *ctl`` where nothing answers there (the plugin is not enabled)."""
    try:
        # Not through a proxy from the environment: the broker is on this machine.
        response = httpx.request(
            method,
            f"{RABBIT_API}{path}",
            json=body,
            timeout=httpx.Timeout(120, connect=5),
            trust_env=False,
        )
    except (httpx.ConnectError, httpx.ConnectTimeout):
        rabbitmqctl(*ctl)
        return
    response.raise_for_status()


def add_vhost(name: str) -> None:
    """Create the RabbitMQ virtual host ``name``, guest allowed everything in it."""
    vhost = quote(name, safe="")
    _rabbit_admin("PUT", f"/vhosts/{vhost}", ["add_vhost", name])
    try:
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        ctl = ["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]
        _rabbit_admin("PUT", f"/permissions/{vhost}/guest", ctl, everything)
    except BaseException:
        with contextlib.suppress(Exception):
            delete_vhost(name)
        raise


def delete_vhost(name: str) -> None:
    """Delete the RabbitMQ virtual host ``name``, its queues and messages with it."""
    _rabbit_admin("DELETE", f"/vhosts/{quote(name, safe='')}", ["delete_vhost", name])


@contextlib.contextmanager
def rabbitmq_vhost(name: str) -> Iterator[str]:
    """A RabbitMQ virtual host of its own on the machine's broker (its URL), deleted after."""
    add_vhost(name)
    try:
        yield f"{AMQP_BASE}/{name}"
    finally:
        with contextlib.suppress(Exception):
            delete_vhost(name)


def write_ini(
    folder: Path, settings: dict[str, Any], name: str = "worker.ini", logging: str = LOGGING_INI
) -> Path:
    return cli_runner.write_ini(folder, settings, name, extra=logging)


class Process:
    """An ``nproxy`` subprocess (worker or beat) with its log in a file."""

    def __init__(self, args: list[str], log_path: Path, cwd: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            [*NPROXY, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log:
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"process exited with {self.popen.returncode}:\n{self.log}")
            time.sleep(0.05)
        raise RuntimeError(f"{text!r} not in the log within {timeout} s:\n{self.log[-4000:]}")

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            # TERM is Celery's warm shutdown; a worker stuck in a long job is killed after.
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


class Customer:
    """A logged-in user with a cycle, talking to the API like the chat UI."""

    def __init__(self, api: ApiClient, user: Any, cycle: BillingCycle | None) -> None:
        self.api = api
        self.user = user
        self.cycle = cycle

    def conversation(self, title: str | None = None) -> str:
        response = self.api.post("/api/v1/conversations", {} if title is None else {"title": title})
        assert response.status_int == 201, response.text
        return response.json["id"]

    def submit(
        self, conversation_id: str, headers: dict[str, str] | None = None, **controls: Any
    ) -> webtest.TestResponse:
        body = {"mode": "text_to_image", "prompt": "a red bicycle", **controls}
        return self.api.post(
            f"/api/v1/conversations/{conversation_id}/generations", body, headers=headers or {}
        )

    def poll(self, generation_id: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/generations/{generation_id}")
        assert response.status_int == 200, response.text
        return response.json

    def session_clone(self) -> webtest.TestApp:
        """Another client on the same session: its own cookie jar, the same cookies."""
        clone = webtest.TestApp(self.api.app.app, extra_environ={"HTTP_HOST": "localhost"})
        for name, value in self.api.app.cookies.items():
            clone.set_cookie(name, value)
        return clone

    def post_concurrently(
        self,
        path: str,
        count: int,
        body: Callable[[int], dict[str, Any] | None] = lambda n: None,
        headers: dict[str, str] | None = None,
    ) -> list[webtest.TestResponse]:
        """``count`` POSTs to ``path`` at once, each from its own thread and client on this
        session; ``body(n)`` is the JSON of the n-th (None: no body)."""
        csrf = self.api.csrf()
        clients = [self.session_clone() for _ in range(count)]
        start = threading.Barrier(count)
        answers: list[Any] = [None] * count

        def post(n: int) -> None:
            start.wait()
            kw = {"headers": {"X-CSRF-Token": csrf, **(headers or {})}, "status": "*"}
            data = body(n)
            client = clients[n]
            answers[n] = (
                client.post(path, **kw) if data is None else client.post_json(path, data, **kw)
            )

        threads = [threading.Thread(target=post, args=(n,)) for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return answers


def wait_for_generation(
    db: Session, generation_id: str, *, timeout: float = 60, states: Any = None
) -> Generation:
    """Wait (with a deadline) until the job reaches one of ``states`` (default: terminal)."""

    wanted = tuple(states or TERMINAL)
    deadline = time.monotonic() + timeout
    gid = uuid.UUID(generation_id)
    while True:
        db.expire_all()
        generation = db.scalar(sa.select(Generation).where(Generation.id == gid))
        if generation is not None and generation.status in wanted:
            return generation
        if time.monotonic() > deadline:
            state = None if generation is None else generation.status
            raise AssertionError(f"generation {generation_id} still {state} after {timeout} s")
        time.sleep(0.05)


def messages_in_vhost(vhost: str) -> int:
    """Messages in the RabbitMQ virtual host ``vhost``, ready or in a worker's hands (a task is
    acknowledged once it ran); 0 where ``rabbitmqctl`` cannot tell. Workers take no remote
    control commands (tasks.py), so the broker is the one to ask what they hold. Not the
    management API: its message counts are statistics sampled every few seconds, which may
    still say 0 for a task just published or taken."""
    listed = subprocess.run(
        [RABBITMQCTL, "-q", "list_queues", "-p", vhost, "messages"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if listed.returncode != 0:
        return 0
    return sum(int(line) for line in listed.stdout.split() if line.isdigit())


def worker_idle(engine: sa.Engine, vhost: str) -> bool:
    """No job is unfinished and no task is waiting or running in ``vhost``: what a warm
    shutdown of the worker would have waited for."""
    with engine.connect() as conn:
        unfinished = conn.scalar(
            sa.select(sa.func.count()).where(Generation.status.not_in(TERMINAL))
        )
    return not unfinished and not messages_in_vhost(vhost)


#: How long a shared worker may take to finish what a test gave it before it is stopped.
IDLE_SECONDS = 30


def idle_in_time(engine: sa.Engine, vhost: str) -> bool:
    """Whether :func:`worker_idle` comes true within :data:`IDLE_SECONDS`."""
    deadline = time.monotonic() + IDLE_SECONDS
    while not worker_idle(engine, vhost):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class SharedWorker:
    """One ``nproxy worker`` for the tests of a module that leave it running (none kills,
    stops or reconfigures it), on a RabbitMQ virtual host of its own, so that the module's
    other tests (jobs meant to stay queued, workers of their own) never meet it.

    Starting a worker costs seconds of CPU a test. What one test leaves behind is undone for
    the next: :meth:`release` waits until the worker has nothing in hand, as its warm shutdown
    did, before the ``db`` fixture empties the tables; :meth:`acquire` puts back its liveness
    row, which that emptied. A worker still busy after :data:`IDLE_SECONDS` is stopped, and the
    next test starts a new one.
    """

    def __init__(
        self, settings: dict[str, Any], folder: Path, vhost: str, engine: sa.Engine
    ) -> None:
        self.folder = folder
        self.vhost = vhost
        self.broker_url = f"{AMQP_BASE}/{vhost}"
        self.settings = {**settings, "celery.broker_url": self.broker_url}
        self.engine = engine
        self.process: Process | None = None
        self._running = contextlib.ExitStack()
        self._liveness: list[dict[str, Any]] = []

    def acquire(self) -> Process:
        from nproxy_core.health.models import WorkerProcess

        table = WorkerProcess.__table__
        if self.process is None:
            self._running.enter_context(rabbitmq_vhost(self.vhost))
            ini = write_ini(self.folder, self.settings)
            process = Process(
                ["-c", str(ini), "worker", "--concurrency", "16"],
                self.folder / "worker.log",
                self.folder,
            )
            self._running.callback(process.stop)
            process.wait_for_log(" ready.")
            self.process = process
            with self.engine.connect() as conn:
                rows = conn.execute(table.select().where(table.c.pid == process.popen.pid))
                self._liveness = [dict(row) for row in rows.mappings()]
        else:
            from sqlalchemy.dialects.postgresql import insert

            from nproxy_core.db import utcnow

            rows = [{**row, "last_seen_at": utcnow()} for row in self._liveness]
            if rows:
                with self.engine.begin() as conn:
                    conn.execute(insert(table).on_conflict_do_nothing(), rows)
        return self.process

    def release(self) -> None:
        if self.process is not None and not idle_in_time(self.engine, self.vhost):
            self.close()

    def close(self) -> None:
        self._running.close()
        self._running = contextlib.ExitStack()
        self.process = None


def fresh_cycle(db: Session, cycle_id: int) -> BillingCycle:
    db.expire_all()
    cycle = db.get(BillingCycle, cycle_id)
    assert cycle is not None
    return cycle


RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


class PrivateRabbitMQ:
    """A RabbitMQ node of this test alone (own name, ports and data folder), so restarting it
    disturbs no one else's run on the machine's broker."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.node = f"nproxy_test_{os.getpid()}_{self.port}@localhost"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (folder / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(folder / "rabbitmq.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )

    def start(self) -> None:
        subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"],
            env=self.env,
            cwd=self.folder,
            check=True,
            timeout=60,
        )
        self.wait_until_up()

    def wait_until_up(self, timeout: float = 120) -> None:
        wait_for_port(self.port, timeout=timeout)

    def restart_app(self) -> None:
        """``stop_app`` then ``start_app``: the broker goes away and comes back."""
        self.ctl("stop_app")
        deadline = time.monotonic() + 60
        while True:
            # The listener may take a moment to let go of its port after stop_app.
            if self.ctl("start_app", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ node {self.node} did not start again")
            time.sleep(0.5)
        self.wait_until_up()

    def queue_depth(self, queue: str = "celery") -> int:
        out = self.ctl("-q", "list_queues", "name", "messages").stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return int(parts[1])
        return 0

    def stop(self) -> None:
        self.ctl("shutdown", check=False)


ROOT = Path(__file__).resolve().parents[1]
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


class WebServer:
    """The web app served as in production: gunicorn with the repository's gunicorn.conf.py
    (gthread workers), on a port of its own, its log in a file."""

    def __init__(
        self, folder: Path, settings: dict[str, Any], logging: str = LOGGING_INI, **environ: str
    ) -> None:
        ini = write_ini(folder, settings, name="web.ini", logging=logging)
        self.log_path = folder / "web.log"
        self._log = self.log_path.open("wb")
        # Port 0: the kernel picks a free port as gunicorn binds it, so no other server of a
        # test running beside this one can take it in between; gunicorn logs which it got.
        env = {**os.environ, "WEB_BIND": "127.0.0.1:0", **environ}
        self.popen = subprocess.Popen(
            [GUNICORN, "--config", str(ROOT / "gunicorn.conf.py"), "--paste", str(ini)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env=env,
            start_new_session=True,
        )
        self.port = self._bound_port(timeout=60)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_for_port(self.port, self.popen, timeout=60)

    def _bound_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.log_tail())
            if found:
                return int(found.group(1))
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.popen.returncode}:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not listen within {timeout} s:\n{self.log_tail()}")

    def request(
        self,
        method: str,
        path: str,
        cookie: str,
        timeout: float = 60,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, float]:
        """(status, body, seconds) of one request on a connection of its own; the body is
        decoded JSON when the answer is JSON, else text."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        started = time.perf_counter()
        try:
            connection.request(
                method,
                path,
                headers={"Cookie": cookie, "Accept": "application/json", **(headers or {})},
            )
            response = connection.getresponse()
            body = response.read()
        except ConnectionError as error:
            # Say what the server said: a worker that died or never booted is in its log.
            raise AssertionError(
                f"{method} {path}: {error!r}; gunicorn:\n{self.log_tail()}"
            ) from error
        finally:
            connection.close()
        elapsed = time.perf_counter() - started
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(body), elapsed
        return response.status, body.decode(errors="replace"), elapsed

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


def cookie_header(api: ApiClient) -> str:
    """The session cookie of a logged-in WebTest client, for plain HTTP clients."""
    return "; ".join(f"{name}={value}" for name, value in api.app.cookies.items())
