"""Database connections: not pinged on every checkout, yet a dead one costs no request; read-only
routes read in autocommit and cannot write."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import cut_every_connection
from nproxy_core.accounts.models import User
from nproxy_core.db import IDatabase, ReadOnlyViolation
from nproxy_core.wiring import find_service


def test_pooled_connections_are_recycled_not_pinged(app):
    engine = find_service(app.app.registry, IDatabase).engine
    assert engine.pool._pre_ping is False
    assert 0 < engine.pool._recycle <= 3600


def test_requests_after_every_connection_was_cut_are_answered(app, api, user_factory, engine):
    user = user_factory()
    assert api.login(user.email).status_int == 200
    # Fill the pool with connections, then have the database drop them all.
    for _ in range(3):
        assert api.get("/api/v1/me").status_int == 200
        assert api.get("/healthz").status_int == 200
    assert cut_every_connection(engine.url.database) >= 1

    # The first use of a dead connection renews the pool and the request runs again.
    assert api.get("/api/v1/me").status_int == 200
    assert cut_every_connection(engine.url.database) >= 1
    assert api.get("/healthz").json == {"status": "ok", "database": "ok"}
    assert cut_every_connection(engine.url.database) >= 1
    answer = api.get("/api/v1/generations/00000000-0000-0000-0000-000000000000?wait=1")
    assert answer.status_int == 404


def test_the_poll_route_is_read_only_and_the_submit_route_is_not(app):
    from nproxy_core.db import ReadOnlyRoute

    mapper = app.app.routes_mapper

    def read_only(name: str) -> bool:
        return any(
            isinstance(p, ReadOnlyRoute) and p.value for p in mapper.get_route(name).predicates
        )

    assert read_only("api.generation")
    assert not read_only("api.conversation.generations")


def test_a_read_only_session_refuses_every_write(app, user_factory):
    user = user_factory()
    database = find_service(app.app.registry, IDatabase)
    session = database.read_only_session_factory()
    try:
        assert session.get(User, user.id).email == user.email
        with pytest.raises(ReadOnlyViolation):
            session.execute(sa.update(User).where(User.id == user.id).values(is_blocked=True))
        session.get(User, user.id).is_blocked = True
        with pytest.raises(ReadOnlyViolation):
            session.flush()
    finally:
        session.close()
    with database.session_factory() as fresh:
        assert fresh.get(User, user.id).is_blocked is False
