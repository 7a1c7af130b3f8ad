"""The completion signal: requests waiting for a generation (the chat's long poll, the developer
API) wake the moment it reaches a terminal state, without a thread of their own re-querying.

The job announces its end inside the transaction that makes it terminal, so waiters wake only
once that transaction commits and always read the final state. In each web process, one
listener fans out to every waiter of that process; a waiter costs an Event, no query, until it
wakes or its deadline passes. A waiter that is never woken (a notification lost while the
listener reconnected, a worker on another host of the in-process signal) still ends at its
deadline, and the caller reads the true state then: the signal makes answers fast, the database
keeps them right.

Two implementations, chosen by ``nproxy.generation.completion_signal``:

- ``postgres`` (the default on PostgreSQL): ``NOTIFY`` in the finishing transaction (delivered
  only on commit, by PostgreSQL itself), ``LISTEN`` on one dedicated connection per process;
- ``local`` (the default on SQLite, for ``nproxy dev``): an in-process signal fired after the
  commit; it reaches waiters of the same process only, which is where ``nproxy dev`` runs its
  worker.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.generation.interfaces import ICompletionSignal

log = logging.getLogger(__name__)

#: The PostgreSQL channel; the payload is the generation id.
CHANNEL = "nproxy_generation_finished"
#: How long the first waiter of a process waits for the listener to be listening.
LISTENER_START_SECONDS = 2.0
#: The listener checks this often whether it should stop, and its connection stays alive.
LISTENER_TICK_SECONDS = 1.0
LISTENER_MAX_BACKOFF_SECONDS = 10.0


class Waiter:
    """One waiting request: ``wait`` returns True when woken, False at the timeout."""

    def __init__(self, waiters: Waiters) -> None:
        self._event = threading.Event()
        self._waiters = waiters
        #: Blocked in ``wait`` right now (its caller has read the state and found it open).
        self.blocked = False

    @property
    def closed(self) -> bool:
        """The process is shutting down: stop waiting and answer with what there is."""
        return self._waiters.closed

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        if self.closed:
            return True
        self.blocked = True
        try:
            woken = self._event.wait(max(0.0, timeout))
        finally:
            self.blocked = False
        # Cleared for the next wait: the caller reads the state after each wake, and a later
        # announcement must not be lost in between (it sets the event again).
        self._event.clear()
        return woken


class Waiters:
    """The waiters of this process, by generation id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[Waiter]] = {}
        self.closed = False

    @contextlib.contextmanager
    def subscribe(self, generation_id: uuid.UUID | str) -> Iterator[Waiter]:
        key = str(generation_id)
        waiter = Waiter(self)
        with self._lock:
            self._waiting.setdefault(key, set()).add(waiter)
            if self.closed:
                waiter.wake()
        try:
            yield waiter
        finally:
            with self._lock:
                waiters = self._waiting.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiting[key]

    def wake(self, generation_id: str) -> int:
        with self._lock:
            waiters = list(self._waiting.get(generation_id, ()))
        for waiter in waiters:
            waiter.wake()
        return len(waiters)

    def wake_all(self) -> int:
        with self._lock:
            waiters = [w for group in self._waiting.values() for w in group]
        for waiter in waiters:
            waiter.wake()
        return len(waiters)

    def count(self, *, blocked: bool = False) -> int:
        """The waiters subscribed; with ``blocked``, only those now waiting for a wake."""
        with self._lock:
            return sum(
                1
                for group in self._waiting.values()
                for waiter in group
                if waiter.blocked or not blocked
            )

    def close(self) -> None:
        # Shutting down: every held request answers now with the state it has.
        with self._lock:
            self.closed = True
        self.wake_all()


@implementer(ICompletionSignal)
class LocalCompletionSignal:
    """In-process: the finishing transaction wakes this process's waiters once it commits."""

    def __init__(self) -> None:
        self.waiters = Waiters()

    def announce(self, session: Session, generation_id: uuid.UUID | str) -> None:
        key = str(generation_id)
        sa.event.listen(session, "after_commit", lambda _s: self.waiters.wake(key), once=True)

    def subscribe(
        self, generation_id: uuid.UUID | str
    ) -> contextlib.AbstractContextManager[Waiter]:
        return self.waiters.subscribe(generation_id)

    def close(self) -> None:
        self.waiters.close()


@implementer(ICompletionSignal)
class PostgresCompletionSignal:
    """``NOTIFY`` in the finishing transaction; one ``LISTEN`` connection per process.

    The listener thread starts with the first waiter, so processes that never wait (workers,
    commands) hold no extra connection. It reconnects with back-off when its connection drops,
    and wakes every waiter after reconnecting: a notification may have been missed meanwhile,
    and each waiter then reads its generation's state once.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self.waiters = Waiters()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()
        self._stop = threading.Event()

    def announce(self, session: Session, generation_id: uuid.UUID | str) -> None:
        session.execute(sa.select(sa.func.pg_notify(CHANNEL, str(generation_id))))

    @contextlib.contextmanager
    def subscribe(self, generation_id: uuid.UUID | str) -> Iterator[Waiter]:
        started_now = self._start()
        with self.waiters.subscribe(generation_id) as waiter:
            if started_now:
                # The first waiter of the process: its announcement must not slip through
                # before the listener is listening. Later waiters never wait here (during an
                # outage they fall back on their deadline).
                self._listening.wait(LISTENER_START_SECONDS)
            yield waiter

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def _start(self) -> bool:
        if self._thread is not None:
            return False
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return False
            self._thread = threading.Thread(
                target=self._listen_forever, name="nproxy-completion-listener", daemon=True
            )
            self._thread.start()
            return True

    def _connect(self) -> Any:
        # A connection of its own, outside the pool: it lives as long as the process, with
        # TCP keepalives so a silently dropped link is noticed.
        dialect = self._engine.dialect
        cargs, cparams = dialect.create_connect_args(self._engine.url)
        cparams = {
            **cparams,
            "autocommit": True,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        return dialect.loaded_dbapi.connect(*cargs, **cparams)

    def _listen_forever(self) -> None:
        backoff = 0.5
        connected_before = False
        while not self._stop.is_set():
            try:
                with self._connect() as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    if connected_before:
                        woken = self.waiters.wake_all()
                        log.info("completion listener reconnected; woke %d waiters", woken)
                    connected_before = True
                    backoff = 0.5
                    while not self._stop.is_set():
                        for notification in connection.notifies(timeout=LISTENER_TICK_SECONDS):
                            self.waiters.wake(notification.payload)
            except Exception:
                self._listening.clear()
                if self._stop.is_set():
                    break
                log.warning(
                    "completion listener lost its connection; retrying in %.1f s",
                    backoff,
                    exc_info=True,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, LISTENER_MAX_BACKOFF_SECONDS)
        self._listening.clear()

    def close(self) -> None:
        # Never joins: it runs in a signal handler on shutdown. The listener notices within a
        # tick and closes its connection.
        self._stop.set()
        self.waiters.close()


def completion_signal(kind: str, engine: sa.Engine) -> ICompletionSignal:
    """The signal named by ``nproxy.generation.completion_signal`` (``auto`` by backend)."""
    if kind == "auto":
        kind = "postgres" if engine.dialect.name == "postgresql" else "local"
    if kind == "postgres":
        return PostgresCompletionSignal(engine)
    return LocalCompletionSignal()


__all__ = [
    "CHANNEL",
    "LocalCompletionSignal",
    "PostgresCompletionSignal",
    "Waiter",
    "completion_signal",
]
