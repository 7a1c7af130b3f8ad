"""Database round trips of a request, counted from PostgreSQL's wire protocol itself.

libpq traces every message of a connection; each round trip ends with the server's
``ReadyForQuery``, whether it carried a query, a ``BEGIN``, a ``COMMIT`` or psycopg's preparing
of a statement. So the count is what the network sees, not what SQLAlchemy thinks it sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa


@dataclasses.dataclass
class RoundTrips:
    """The round trips seen since the count started (:func:`counting`)."""

    path: Path
    #: The trace file, open while counting: libpq writes to its descriptor.
    file: Any = None
    connections: list[Any] = dataclasses.field(default_factory=list)
    before: int = 0

    def _seen(self) -> int:
        # libpq buffers its trace: stopping it flushes what it holds; then it starts again.
        for connection in self.connections:
            if not connection.closed:
                connection.pgconn.untrace()
                _trace(connection, self.file)
        return self.path.read_text().count("ReadyForQuery")

    def start(self) -> None:
        self.before = self._seen()

    @property
    def count(self) -> int:
        return self._seen() - self.before


def _trace(connection: Any, file: Any) -> None:
    from psycopg.pq import Trace

    connection.pgconn.trace(file.fileno())
    connection.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)


@contextlib.contextmanager
def counting(engine: sa.Engine, folder: Path) -> Iterator[RoundTrips]:
    """Trace every connection ``engine``'s pool hands out from now on; ``start()`` the count
    (after a warm-up: psycopg prepares a statement on its 5th use, in a round trip of its own)."""
    trips = RoundTrips(folder / "libpq.trace")
    trips.file = trips.path.open("w")

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection not in trips.connections:
            trips.connections.append(dbapi_connection)
            _trace(dbapi_connection, trips.file)

    sa.event.listen(engine, "checkout", checkout)
    try:
        yield trips
    finally:
        sa.event.remove(engine, "checkout", checkout)
        for connection in trips.connections:
            if not connection.closed:
                connection.pgconn.untrace()
        trips.file.close()
