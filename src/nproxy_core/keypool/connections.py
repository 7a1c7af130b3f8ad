"""The router's database connections: short transactions of its own, and on PostgreSQL a second
engine in autocommit for the one-statement steps of :mod:`.statements`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from nproxy_core.db import create_engine

log = logging.getLogger(__name__)


class RouterConnections:
    """Where the router's statements run. Thread-safe; one per router."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory
        self._autocommit = statement_engine(session_factory.kw["bind"])

    @property
    def one_statement(self) -> bool:
        """Whether the hot path runs its steps as one statement each (PostgreSQL)."""
        return self._autocommit is not None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A short transaction of the router's own, committed when the block ends."""
        with self._session_factory.begin() as session:
            yield session.connection()

    def run(self, statement: sa.Executable, params: dict[str, Any]) -> sa.Row[Any] | None:
        """One statement in its own implicit transaction (PostgreSQL); returns its first row.

        Connections are not pinged on checkout (a round trip each time); instead a statement
        that finds its connection dead (the database restarted, an idle connection was cut)
        runs once more on a fresh one: the pool then replaces every connection older than the
        failure. Such a statement never reached the server. (A connection lost in the middle
        of a statement is as ambiguous as one lost during a COMMIT: rare, and not told apart.)
        """
        assert self._autocommit is not None
        for last in (False, True):
            try:
                with self._autocommit.connect() as conn:
                    return conn.execute(statement, params).first()
            except sa.exc.DBAPIError as exc:
                if last or not exc.connection_invalidated:
                    raise
                log.warning("router connection lost (%s); running the statement again", exc.orig)
        raise AssertionError("unreachable")  # pragma: no cover


def statement_engine(engine: sa.Engine) -> sa.Engine | None:
    """On PostgreSQL, the engine for the router's one-statement steps; None elsewhere.

    Same database, own pool: autocommit (each statement its own transaction, so no BEGIN and
    COMMIT round trips) and no ping on checkout (:meth:`RouterConnections.run` retries
    instead). It is disposed with ``engine``.
    """
    if engine.dialect.name != "postgresql":
        return None
    own = create_engine(
        {"sqlalchemy.url": engine.url},
        pool_pre_ping=False,
        # Connections older than this are replaced, before an idle timeout can cut them.
        pool_recycle=1800,
        # The same bound as the main pool (sqlalchemy.pool_size + max_overflow), so a
        # process's connections add up to twice that: the deployment's budget counts on it.
        pool_size=engine.pool.size(),  # type: ignore[attr-defined]
        max_overflow=engine.pool._max_overflow,  # type: ignore[attr-defined]
        isolation_level="AUTOCOMMIT",
    )
    sa.event.listen(engine, "engine_disposed", lambda _engine: own.dispose())
    return own
