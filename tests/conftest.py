"""Shared fixtures: a real PostgreSQL database migrated to head, the real app through WebTest,
and an API client that speaks CSRF like the chat UI does.

Tests commit for real (threads, subprocesses and workers must see their rows); every table is
emptied after each test that touched the database.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import webtest
from sqlalchemy.orm import Session

from apiclient import PASSWORD, ApiClient
from nproxy_core.config import configure
from nproxy_core.db import IDatabase, create_engine, import_models
from nproxy_core.wiring import find_service

# Shared fixtures that live in their own modules: the SeaweedFS S3 server (``s3_server``).
pytest_plugins = ("s3server",)

ADMIN_URL = os.environ.get("NPROXY_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
# One database per test run, and per pytest-xdist worker (gw0, gw1, ...: a process each), so
# that runs side by side never disturb each other.
TEST_DB = os.environ.get("NPROXY_TEST_DB", f"nproxy_test_{os.getpid()}")
if "NPROXY_TEST_DB" in os.environ and "PYTEST_XDIST_WORKER" in os.environ:
    TEST_DB = f"{TEST_DB}_{os.environ['PYTEST_XDIST_WORKER']}"
TEST_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{TEST_DB}"


def _drop_database() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')


def _migrations_fingerprint() -> str:
    """A digest of the migrations (their scripts and Alembic's environment)."""
    from nproxy_core import migrations

    folder = Path(migrations.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


#: The advisory lock under which test processes make or copy the migrated template.
_TEMPLATE_LOCK = 7_311_052


def _create_migrated_database(base_settings: dict[str, Any]) -> None:
    """The test database as a copy of a template migrated to head with Alembic, made by the
    first test process that needs it and kept, under a name of its migrations' digest, until
    they change: every xdist worker and every later run copies it instead of migrating again."""
    from nproxy_core.migrations import upgrade

    template = f"nproxy_test_template_{_migrations_fingerprint()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK,))
        try:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,))
            if found.fetchone() is None:
                stale = conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'nproxy_test_template_%'"
                ).fetchall()
                for (name,) in stale:
                    conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                # Built under another name and renamed once migrated: a template that exists is
                # whole, even after a run stopped halfway through building it.
                building = f"{template}_building"
                conn.execute(f'CREATE DATABASE "{building}"')
                upgrade({**base_settings, "sqlalchemy.url": TEST_URL.replace(TEST_DB, building)})
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (building,),
                )
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
            conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{TEST_DB}" TEMPLATE "{template}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK,))


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with minimal cost inside the test process: the default cost takes about a
    second per hash on a busy two-core machine, and accounts are mostly set-up, not subject.
    Subprocesses (the CLI, workers) keep the real cost."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(
        "nproxy_core.accounts.services._hasher",
        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )


@pytest.fixture(scope="session")
def media_root() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="nproxy-media-") as folder:
        yield folder


@pytest.fixture(scope="session")
def base_settings(media_root: str) -> dict[str, Any]:
    return {
        "nproxy.env": "development",
        "sqlalchemy.url": TEST_URL,
        "nproxy.secret": "test-secret-" + "x" * 40,
        "nproxy.public_url": "http://localhost",
        "nproxy.storage": "local",
        "storage.local.path": media_root,
        "nproxy.providers": "demo",
        "nproxy.payments": "",
        "demo.delay_seconds": "0",
        "nproxy.ratelimit.login": "1000/minute",
        "nproxy.ratelimit.register": "1000/minute",
        "nproxy.ratelimit.password_reset": "1000/minute",
        "nproxy.ratelimit.storage": "memory://",
        "nproxy.mailer": "dummy",
        "celery.broker_url": "memory://",
        "retry.attempts": "3",
    }


@pytest.fixture(scope="session")
def database(base_settings: dict[str, Any]) -> Iterator[str]:
    """A fresh database at the start of the run, migrated to head with Alembic (a copy of the
    migrated template, see :func:`_create_migrated_database`)."""
    _create_migrated_database(base_settings)
    yield TEST_URL
    _drop_database()


@pytest.fixture(scope="session")
def engine(database: str, base_settings: dict[str, Any]) -> Iterator[sa.Engine]:
    # The tests' own engine pings: tests that cut every connection must not break the
    # clean-up after them (the app's engines do not ping; see db.py).
    engine = create_engine(base_settings, pool_pre_ping=True)
    _remember_seeded_rows(engine)
    yield engine
    engine.dispose()


def cut_every_connection(database: str) -> int:
    """Have PostgreSQL drop every connection to ``database`` (as a restart would)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    return row[0]


_SEQUENCES = sa.text(
    "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences "
    "WHERE schemaname = current_schema()"
)


@functools.cache
def _restart_sequences(engine: sa.Engine) -> sa.TextClause | None:
    """One statement putting every sequence back at 1 (the schema is fixed for the run)."""
    with engine.connect() as conn:
        sequences = conn.execute(_SEQUENCES).scalars().all()
    if not sequences:
        return None
    return sa.text("SELECT " + ", ".join(f"setval('{name}', 1, false)" for name in sequences))


#: Rows the migrations insert (the ``monthly`` plan of 0014_plans), as they were at head:
#: put back after each test's clean-up, as every migrated database has them.
_SEEDED: dict[str, list[dict[str, Any]]] = {}


def _remember_seeded_rows(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        for table in import_models().sorted_tables:
            rows = [dict(row) for row in conn.execute(table.select()).mappings()]
            if rows:
                _SEEDED[table.name] = rows


def empty_all_tables(engine: sa.Engine) -> None:
    """Every table emptied and every sequence back at 1, as after ``TRUNCATE ... RESTART
    IDENTITY``: DELETE of the few rows a test leaves costs a tenth of TRUNCATE, which makes
    new files for every table, rows or not. The migrations' own rows are then put back."""
    restart = _restart_sequences(engine)
    tables = import_models().sorted_tables
    with engine.begin() as conn:
        for table in reversed(tables):
            conn.execute(table.delete())
        if restart is not None:
            conn.execute(restart)
        for table in tables:
            rows = _SEEDED.get(table.name)
            if rows:
                conn.execute(table.insert(), rows)
                conn.execute(
                    sa.select(
                        sa.func.setval(
                            sa.func.pg_get_serial_sequence(table.name, "id"),
                            max(row["id"] for row in rows),
                        )
                    )
                )


@pytest.fixture
def db(engine: sa.Engine) -> Iterator[Session]:
    """A plain session for arranging and checking rows; commit to make them visible."""
    session = Session(bind=engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.rollback()
        session.close()
        empty_all_tables(engine)


@pytest.fixture(scope="session")
def session_browser() -> Iterator[Any]:
    """Debian's Chromium, headless, launched once per session (per xdist worker) for every
    browser test: Playwright's sync API runs one instance per thread."""
    from browser_support import chromium

    with chromium() as browser:
        yield browser


@pytest.fixture
def make_app(db: Session, base_settings: dict[str, Any]) -> Callable[..., webtest.TestApp]:
    """Build the real WSGI app with setting overrides, wrapped in WebTest."""
    built: list[Any] = []

    def factory(**overrides: Any) -> webtest.TestApp:
        settings = {**base_settings, **{k.replace("__", "."): v for k, v in overrides.items()}}
        config = configure(settings)
        wsgi = config.make_wsgi_app()
        built.append(config.registry)
        return webtest.TestApp(wsgi, extra_environ={"HTTP_HOST": "localhost"})

    yield factory
    for registry in built:
        release_registry(registry)


def release_registry(registry: Any) -> None:
    """Let go of what an app built by a test holds: the completion listener (if a held poll
    started it) its connection first, then every pooled connection."""
    from nproxy_core.generation.interfaces import ICompletionSignal

    find_service(registry, ICompletionSignal).close()
    find_service(registry, IDatabase).engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., webtest.TestApp]) -> webtest.TestApp:
    return make_app()


@pytest.fixture
def registry(app: webtest.TestApp) -> Any:
    return app.app.registry


@pytest.fixture
def api(app: webtest.TestApp) -> ApiClient:
    return ApiClient(app)


def registry_service(registry: Any, iface: Any = None, name: str = "") -> Any:
    """A service from an app's registry, found as a request would find it."""
    from pyramid.request import Request, apply_request_extensions

    request = Request.blank("/")
    request.registry = registry
    apply_request_extensions(request)
    return request.find_service(iface, name=name)


@pytest.fixture
def outbox(app: webtest.TestApp) -> Any:
    """Mail sent by any app of the test, delivered from the queue as a worker would."""
    from mail_support import Outbox

    return Outbox(app.app.registry)


@pytest.fixture
def user_factory(db: Session) -> Callable[..., Any]:
    from nproxy_core.accounts.models import Role
    from nproxy_core.accounts.services import create_user

    counter = iter(range(1, 10**6))

    def factory(
        email: str | None = None,
        *,
        password: str = PASSWORD,
        admin: bool = False,
        blocked: bool = False,
    ) -> Any:
        email = email or f"user{next(counter)}@example.com"
        user = create_user(db, email, password, role=Role.ADMIN if admin else Role.USER)
        user.is_blocked = blocked
        db.commit()
        return user

    return factory


def monthly_plan_id(db: Session) -> int:
    """The id of the plan ``monthly`` that migration 0014 makes (every cycle names a plan)."""
    from nproxy_core.billing.models import Plan

    return db.scalar(sa.select(Plan.id).where(Plan.code == "monthly"))


@pytest.fixture
def make_pack(db: Session) -> Callable[..., Any]:
    """Give a user a pack balance (usable now by default), as a bought credit pack would be."""
    from nproxy_core.billing.models import BalanceSource, PackBalance
    from nproxy_core.db import utcnow

    def factory(
        user: Any,
        units: int,
        *,
        used: int = 0,
        models: tuple[str, ...] = (),
        expires_at: dt.datetime | None = None,
        revoked: bool = False,
        label: str = "Test pack",
    ) -> Any:
        now = utcnow()
        balance = PackBalance(
            user_id=user.id,
            source=BalanceSource.GRANT,
            label=label,
            units=units,
            used=used,
            models=list(models),
            starts_at=now - dt.timedelta(minutes=1),
            expires_at=expires_at or now + dt.timedelta(days=365),
            revoked_at=now if revoked else None,
        )
        db.add(balance)
        db.commit()
        return balance

    return factory


@pytest.fixture
def make_cycle(db: Session) -> Callable[..., Any]:
    """Give a user a billing cycle (current by default), as a paid one would be."""
    from nproxy_core.billing.models import BillingCycle
    from nproxy_core.db import utcnow

    def factory(
        user: Any,
        *,
        starts_at: dt.datetime | None = None,
        ends_at: dt.datetime | None = None,
        request_limit: int = 300,
        used: int = 0,
        reserved: int = 0,
    ) -> Any:
        now = utcnow()
        cycle = BillingCycle(
            user_id=user.id,
            starts_at=starts_at or now - dt.timedelta(days=1),
            ends_at=ends_at or now + dt.timedelta(days=29),
            period_months=1,
            plan_id=monthly_plan_id(db),
            request_limit=request_limit,
            used=used,
            reserved=reserved,
        )
        db.add(cycle)
        db.commit()
        return cycle

    return factory


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The slow tests first (a stable sort): under pytest-xdist they spread over the workers
    # from the start, instead of one worker being left with the longest at the end.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# --- the network paths provider tests try -------------------------------------------------------


@pytest.fixture
def unused_port() -> int:
    """A closed port on 127.0.0.1: connecting to it is refused."""
    from fakes.proxies import free_port

    return free_port()


@pytest.fixture
def http_proxy(tmp_path: Any) -> Iterator[str]:
    """A real forwarding HTTP proxy (PyPI ``proxy.py``) in a subprocess; yields its URL."""
    from fakes.proxies import http_proxy as run_http_proxy

    with run_http_proxy(tmp_path) as url:
        yield url
