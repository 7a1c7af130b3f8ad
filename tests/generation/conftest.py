"""Fixtures for the generation pipeline: a RabbitMQ virtual host of this test run, real worker
(and beat) processes started with ``nproxy``, paying users and demo keys.

Every worker test talks to the real broker on 127.0.0.1:5672 in a vhost of its own
(``nproxy_test_<pid>``), so runs side by side never take each other's jobs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest
from sqlalchemy.orm import Session

from apiclient import ApiClient
from generation_support import (
    LOGGING_INI,
    Customer,
    Process,
    rabbitmq_vhost,
    write_ini,
)
from nproxy_core.audit import Surface
from nproxy_core.billing.models import BillingCycle
from nproxy_core.keypool import services
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.wiring import find_service


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    """A RabbitMQ vhost for this test run on the machine's broker, deleted at the end."""
    with rabbitmq_vhost(f"nproxy_test_{os.getpid()}") as url:
        yield url


@pytest.fixture
def worker_settings(
    base_settings: dict[str, Any], broker_url: str, tmp_path: Path
) -> dict[str, Any]:
    """Settings shared by the app under test and its worker processes."""
    return {
        **base_settings,
        "celery.broker_url": broker_url,
        "celery.beat_schedule_file": str(tmp_path / "celerybeat-schedule"),
        "demo.delay_seconds": "0.05",
    }


@pytest.fixture
def start_process(tmp_path: Path, db: Session) -> Iterator[Callable[..., Process]]:
    """Start ``nproxy -c <ini> worker|beat`` with the given settings; all stopped at the end.

    Depends on ``db`` so that every process is gone before the tables are emptied.
    """
    started: list[Process] = []
    counter = iter(range(1, 1000))

    def start(
        command: str,
        settings: dict[str, Any],
        *extra: str,
        ready: bool = True,
        logging: str = LOGGING_INI,
    ) -> Process:
        n = next(counter)
        ini = write_ini(tmp_path, settings, name=f"{command}-{n}.ini", logging=logging)
        process = Process(
            ["-c", str(ini), command, *extra], tmp_path / f"{command}-{n}.log", tmp_path
        )
        started.append(process)
        if ready and command == "worker":
            process.wait_for_log(" ready.")
        if ready and command == "beat":
            process.wait_for_log("beat: Starting")
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def start_worker(
    start_process: Callable[..., Process], worker_settings: dict[str, Any]
) -> Callable[..., Process]:
    def start(**overrides: Any) -> Process:
        settings = {**worker_settings, **{k.replace("__", "."): v for k, v in overrides.items()}}
        return start_process("worker", settings, "--concurrency", "16")

    return start


@pytest.fixture
def add_key(db: Session) -> Callable[..., int]:
    """Put a provider key into the pool through the admin service; returns its id."""

    def add(registry: Any, secret: str, provider: str = "demo") -> int:
        key = services.add_key(
            db,
            find_service(registry, ISecretBox),
            provider=provider,
            secret=secret,
            enabled_providers=list(find_service(registry, IPlugins).providers),
            actor=services.Actor("tests", Surface.CLI),
        )
        db.commit()
        return key.id

    return add


@pytest.fixture
def customer_factory(
    user_factory: Callable[..., Any], make_cycle: Callable[..., BillingCycle]
) -> Callable[..., Customer]:
    def make(app: webtest.TestApp, *, request_limit: int | None = 300, **kw: Any) -> Customer:
        user = user_factory(**kw)
        cycle = None if request_limit is None else make_cycle(user, request_limit=request_limit)
        # A TestApp of its own: its cookie jar is this user's session.
        api = ApiClient(webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"}))
        assert api.login(user.email).status_int == 200
        return Customer(api, user, cycle)

    return make
