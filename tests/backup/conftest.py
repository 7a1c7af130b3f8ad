"""Fixtures of the backup tests: the app under test, a writer thread, fresh databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import webtest

from backup_support import Site, Writer, database_url
from conftest import ADMIN_URL, TEST_DB, registry_service
from nproxy_core.audit import Surface
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import ISecretBox


@pytest.fixture
def make_site(
    make_app: Callable[..., webtest.TestApp], base_settings: dict[str, Any], db: Any, tmp_path: Path
) -> Callable[..., Site]:
    def make(**storage: str) -> Site:
        settings = {
            **base_settings,
            "nproxy.payments": "demo",
            "nproxy.limits.uploads": "1000/hour",
            "nproxy.limits.conversations": "1000/hour",
            "nproxy.limits.checkouts": "1000/hour",
            **storage,
        }
        app = make_app(**{key.replace(".", "__"): value for key, value in settings.items()})
        site = Site(app, settings, tmp_path)
        pool.add_key(
            db,
            registry_service(site.registry, ISecretBox),
            provider="demo",
            secret="demo-key-backup-1",
            enabled_providers=["demo"],
            actor=pool.Actor("tests", Surface.CLI),
        )
        db.commit()
        return site

    return make


@pytest.fixture
def writer(make_app: Any, db: Any) -> Iterator[Callable[[Site], Writer]]:
    """Start a writer on a site; every writer stops before the app and its tables go."""
    started: list[Writer] = []

    def start(site: Site) -> Writer:
        started.append(Writer(site).start())
        return started[-1]

    yield start
    for each in started:
        each._stop.set()
        each._thread.join(60)


@pytest.fixture
def fresh_database() -> Iterator[Callable[[], str]]:
    """``createdb``: a new, empty database each call (its URL); all dropped at the end."""
    made: list[str] = []

    def create() -> str:
        name = f"{TEST_DB}_restore_{len(made)}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return database_url(name)

    yield create
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
