"""The deployment's database connections add up (DESIGN 4.11, issue 20): every process's pools
are bounded by production.ini's settings, the key router's own pool included, and the sum over
compose.yml's services fits PostgreSQL's max_connections."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from nproxy_core.db import create_engine
from nproxy_core.keypool.connections import statement_engine

ROOT = Path(__file__).resolve().parents[2]
#: PostgreSQL keeps these for superusers (superuser_reserved_connections).
RESERVED = 3


def production_pool() -> tuple[int, int]:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "production.ini")
    app = ini["app:main"]
    return int(app["sqlalchemy.pool_size"]), int(app["sqlalchemy.max_overflow"])


def bound(engine) -> int:
    return engine.pool.size() + engine.pool._max_overflow


def test_the_key_routers_pool_is_bounded_like_the_main_one(base_settings):
    pool_size, max_overflow = production_pool()
    engine = create_engine(
        {
            **base_settings,
            "sqlalchemy.pool_size": str(pool_size),
            "sqlalchemy.max_overflow": str(max_overflow),
        }
    )
    try:
        router = statement_engine(engine)
        assert bound(engine) == bound(router) == pool_size + max_overflow
    finally:
        engine.dispose()


def test_the_services_connections_fit_postgresqls_limit():
    pool_size, max_overflow = production_pool()
    per_process = 2 * (pool_size + max_overflow)  # the app's pool and the key router's
    web_processes = int(
        re.search(r'WEB_WORKERS", "(\d+)"', (ROOT / "gunicorn.conf.py").read_text()).group(1)
    )
    budget = (
        web_processes * (per_process + 1)  # + the completion listener
        + (per_process + 1)  # a worker, + its liveness beat
        + per_process  # beat
        + per_process  # bot
        + per_process  # one command at a time: migrate, backup, a shell
    )
    compose = (ROOT / "compose.yml").read_text()
    limit = int(re.search(r"max_connections=(\d+)", compose).group(1))
    assert budget <= limit - RESERVED
    # The sum is written where an operator changes either number.
    assert f"= {budget} of" in (ROOT / "production.ini").read_text()
    assert f"= {budget} at most" in compose
