"""What the backup tests share: an app full of users, payments, uploads and generated images,
a writer that keeps it busy from another thread, reading every table, and the ``nproxy``
command run in-process as the README tells the operator to run it."""

from __future__ import annotations

import io
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
import webtest
from click.testing import CliRunner, Result
from PIL import Image
from psycopg import sql

import cli_runner
from apiclient import ApiClient
from conftest import registry_service
from generation_support import Customer
from nproxy_core.cli import main
from nproxy_core.generation.interfaces import IJobRunner
from nproxy_core.migrations import APPLIED_TABLE
from nproxy_core.storage import IStorage, make_storage


def run_nproxy(ini: Path, *args: str) -> Result:
    """``nproxy -c INI ARGS...`` in this process (click's runner), as the operator runs it."""
    return CliRunner().invoke(main, ["-c", str(ini), *args])


def one_line(result: Result) -> str:
    """The one line a refused command prints (non-zero exit, no traceback)."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def png(seed: int) -> bytes:
    image = Image.new("RGB", (24, 16), (seed % 256, (seed * 7) % 256, 90))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass
class Site:
    """The app under test with its settings (the ones its ini file would hold)."""

    app: webtest.TestApp
    settings: dict[str, Any]
    folder: Path
    customers: list[Customer] = field(default_factory=list)

    @property
    def registry(self) -> Any:
        return self.app.app.registry

    def ini(self, name: str = "app.ini", **overrides: str) -> Path:
        return cli_runner.write_ini(self.folder, {**self.settings, **overrides}, name)

    def storage(self) -> Any:
        return make_storage(self.settings)

    def customer(self, email: str) -> Customer:
        """Register, pay through the demo processor's checkout, log in: a paying user."""
        api = ApiClient(webtest.TestApp(self.app.app, extra_environ={"HTTP_HOST": "localhost"}))
        assert api.register(email).status_int in (200, 201)
        checkout = api.app.get("/pricing").forms["checkout-form"].submit().follow()
        paid = checkout.forms["demo-outcome"].submit("outcome", value="paid")
        assert paid.status_int == 303, paid.text
        customer = Customer(api, None, None)
        self.customers.append(customer)
        return customer

    def upload(self, customer: Customer, seed: int) -> str:
        answer = customer.api.post("/api/v1/uploads", upload_files=[("file", "in.png", png(seed))])
        assert answer.status_int == 201, answer.text
        return answer.json["id"]

    def generate(self, customer: Customer, conversation: str, **controls: Any) -> str:
        """Submit a job and run it here, as a worker would: its images go to storage."""
        answer = customer.submit(conversation, **controls)
        assert answer.status_int in (200, 201, 202), answer.text
        generation_id = answer.json["id"]
        runner = registry_service(self.registry, IJobRunner)
        runner.run(generation_id, registry_service(self.registry, IStorage))
        return generation_id


def fill(site: Site) -> None:
    """Users who paid, their uploads, conversations and generated images."""
    for n in range(3):
        customer = site.customer(f"filled{n}@example.com")
        upload = site.upload(customer, seed=n)
        conversation = customer.conversation(f"Conversation {n}")
        site.generate(customer, conversation, batch_size=2)
        site.generate(
            customer,
            conversation,
            mode="image_to_image",
            input_upload_ids=[upload],
            prompt="the same, in blue",
        )


class Writer:
    """Keeps the app busy from another thread: new users, uploads, conversations and generated
    images, one round after another, until stopped."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.rounds = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            customer = self.site.customer(f"busy-{uuid.uuid4().hex[:8]}@example.com")
            conversation = customer.conversation("busy")
            while not self._stop.is_set():
                n = self.rounds
                self.site.upload(customer, seed=100 + n)
                self.site.generate(customer, conversation)
                if n % 3 == 0:
                    # A client of its own: registering logs that client in as the new user.
                    walk_in = ApiClient(
                        webtest.TestApp(self.site.app.app, extra_environ={"HTTP_HOST": "localhost"})
                    )
                    email = f"walk-in-{n}-{uuid.uuid4().hex[:6]}@example.org"
                    assert walk_in.register(email).status_int in (200, 201)
                self.rounds += 1
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self) -> Writer:
        self._thread.start()
        return self

    def wait_for_rounds(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.rounds < count:
            if self.error is not None:
                raise self.error
            assert time.monotonic() < deadline, f"the writer did {self.rounds} of {count} rounds"
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the writer did not stop"
        if self.error is not None:
            raise self.error


def database_url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"


def table_rows(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every row of every table as text, sorted, table by table."""
    rows = {}
    for (table,) in conn.execute(_TABLES).fetchall():
        query = sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table))
        if table == APPLIED_TABLE:
            # When each revision ran differs by nature: the restore migrates its database anew.
            query = sql.SQL("SELECT revision FROM {}").format(sql.Identifier(table))
        rows[table] = sorted(r[0] for r in conn.execute(query))
    return rows


def storage_keys(rows_conn: psycopg.Connection) -> set[str]:
    """The storage keys the rows name (uploads, generated images, template examples); a row
    without an object (a template with no example yet) names none."""
    keys: set[str] = set()
    for (table,) in rows_conn.execute(
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND column_name = 'storage_key'"
    ).fetchall():
        query = sql.SQL("SELECT storage_key FROM {} WHERE storage_key IS NOT NULL").format(
            sql.Identifier(table)
        )
        keys.update(r[0] for r in rows_conn.execute(query))
    return keys


def all_objects(storage: Any) -> dict[str, bytes]:
    return {item.key: storage.get(item.key) for item in storage.list_keys("")}
