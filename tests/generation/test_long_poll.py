"""Long polling (DESIGN 6, ``GET /api/v1/generations/{id}?wait=N``): the answer is held until the
generation is terminal or N seconds pass, woken by the job's completion signal, never by a
thread re-querying; and a held poll holds no database connection while it waits."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from conftest import ADMIN_URL
from generation_support import Customer
from nproxy_core.db import IDatabase
from nproxy_core.generation.completion import CHANNEL
from nproxy_core.generation.interfaces import ICompletionSignal
from nproxy_core.generation.models import Generation, GenerationStatus
from nproxy_core.generation.tasks import run_generation
from nproxy_core.tasks import run_now
from nproxy_core.wiring import find_service


class HeldPoll:
    """A poll with ``?wait=`` running on a thread of its own, timed."""

    def __init__(self, customer: Customer, generation_id: str, wait: float) -> None:
        self.answer: Any = None
        self.answered_at = 0.0
        self.started_at = time.monotonic()

        def run() -> None:
            self.answer = customer.api.get(f"/api/v1/generations/{generation_id}?wait={wait}")
            self.answered_at = time.monotonic()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, timeout: float = 60) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the held poll never answered"
        return self.answer

    @property
    def elapsed(self) -> float:
        return self.answered_at - self.started_at


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app(demo__delay_seconds="0")


@pytest.fixture
def registry(app: Any) -> Any:
    return app.app.registry


@pytest.fixture
def customer(app: Any, registry: Any, customer_factory: Callable[..., Customer], add_key) -> Any:
    add_key(registry, "demo-key-longpoll")
    return customer_factory(app)


def submit(customer: Customer) -> str:
    answer = customer.submit(customer.conversation())
    assert answer.status_int == 202, answer.text
    return answer.json["id"]


def wait_until_waiting(registry: Any, count: int = 1, timeout: float = 10) -> None:
    """Until ``count`` requests wait on the completion signal of this app: subscribed, the
    state read and found open, and blocked until a wake or their deadline."""
    waiters = find_service(registry, ICompletionSignal).waiters
    deadline = time.monotonic() + timeout
    while (waiting := waiters.count(blocked=True)) < count:
        assert time.monotonic() < deadline, f"{waiting} of {count} polls are waiting"
        time.sleep(0.01)


def test_a_held_poll_answers_as_soon_as_the_job_finishes_and_not_before(registry, customer):
    generation_id = submit(customer)
    poll = HeldPoll(customer, generation_id, wait=20)
    wait_until_waiting(registry)
    time.sleep(0.5)
    assert poll.thread.is_alive(), "the poll answered before the job finished"

    run_now(registry, run_generation, generation_id)
    finished_at = time.monotonic()
    answer = poll.result()

    assert answer.status_int == 200, answer.text
    assert answer.json["status"] == "succeeded"
    assert len(answer.json["images"]) == 1
    assert answer.headers["Cache-Control"] == "no-store"
    # Woken by the commit, not by the 20 s deadline.
    assert poll.answered_at - finished_at < 2.0


def test_a_held_poll_times_out_cleanly_at_its_deadline_with_the_current_state(customer):
    generation_id = submit(customer)
    poll = HeldPoll(customer, generation_id, wait=1.5)
    answer = poll.result()
    assert answer.status_int == 200, answer.text
    assert answer.json == {"id": generation_id, "status": "queued", "images": [], "error": None}
    assert 1.5 <= poll.elapsed < 5


def test_a_terminal_generation_answers_at_once_whatever_the_wait(registry, customer):
    generation_id = submit(customer)
    run_now(registry, run_generation, generation_id)
    started = time.monotonic()
    answer = customer.api.get(f"/api/v1/generations/{generation_id}?wait=25")
    assert answer.json["status"] == "succeeded"
    assert time.monotonic() - started < 2


def test_another_users_generation_answers_404_at_once_not_after_the_wait(
    app, customer, customer_factory
):
    generation_id = submit(customer)
    stranger = customer_factory(app)
    started = time.monotonic()
    answer = stranger.api.get(f"/api/v1/generations/{generation_id}?wait=20")
    assert answer.status_int == 404
    assert answer.json["error"]["code"] == "not_found"
    assert time.monotonic() - started < 2
    # A malformed id too, and the same answer.
    assert stranger.api.get("/api/v1/generations/not-a-uuid?wait=20").status_int == 404


@pytest.mark.parametrize("wait", ["26", "-1", "abc", "nan", "inf", "1e9", "25.5"])
def test_a_wait_out_of_range_is_a_400_that_names_it(customer, wait):
    generation_id = submit(customer)
    answer = customer.api.get(f"/api/v1/generations/{generation_id}?wait={wait}")
    assert answer.status_int == 400, answer.text
    assert answer.json["error"]["code"] == "validation_error"
    assert answer.json["error"]["fields"] == {"wait": "invalid"}
    assert "wait" in answer.json["error"]["message"]


def test_a_lost_notification_still_ends_the_wait_by_the_deadline_with_the_true_state(
    registry, customer, db
):
    generation_id = submit(customer)
    poll = HeldPoll(customer, generation_id, wait=2)
    wait_until_waiting(registry)
    # The job ends without announcing it (a notification lost on the way).
    db.execute(
        sa.update(Generation)
        .where(Generation.id == uuid.UUID(generation_id))
        .values(status=GenerationStatus.FAILED, error_code="provider_unavailable")
    )
    db.commit()
    answer = poll.result()
    assert answer.json["status"] == "failed"
    assert 2 <= poll.elapsed < 6


def test_a_held_poll_holds_no_database_connection_while_it_waits(registry, customer):
    generation_id = submit(customer)
    polls = [HeldPoll(customer, generation_id, wait=20) for _ in range(20)]
    wait_until_waiting(registry, count=20)
    time.sleep(0.2)
    # Every held poll gave its connection back: the pool is free for everyone else.
    assert find_service(registry, IDatabase).engine.pool.checkedout() == 0
    run_now(registry, run_generation, generation_id)
    for poll in polls:
        assert poll.result().json["status"] == "succeeded"


def test_a_rolled_back_finish_wakes_no_one(registry, customer):
    generation_id = submit(customer)
    poll = HeldPoll(customer, generation_id, wait=2)
    wait_until_waiting(registry)
    signal = find_service(registry, ICompletionSignal)
    session = find_service(registry, IDatabase).session_factory()
    with session.begin():
        signal.announce(session, generation_id)
        session.rollback()
    answer = poll.result()
    assert answer.json["status"] == "queued"
    assert poll.elapsed >= 2


def listener_pids(database: str) -> list[int]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query = %s",
            (database, f"LISTEN {CHANNEL}"),
        ).fetchall()
    return [row[0] for row in rows]


def test_the_listener_comes_back_after_its_connection_is_cut(registry, customer, engine):
    first = submit(customer)
    HeldPoll(customer, first, wait=1).result()  # starts the listener
    pids = listener_pids(engine.url.database)
    assert len(pids) == 1
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pids[0],))

    signal = find_service(registry, ICompletionSignal)
    deadline = time.monotonic() + 15
    while not (signal.listening and listener_pids(engine.url.database) not in ([], pids)):
        assert time.monotonic() < deadline, "the listener did not reconnect"
        time.sleep(0.05)

    second = submit(customer)
    poll = HeldPoll(customer, second, wait=20)
    wait_until_waiting(registry)
    run_now(registry, run_generation, second)
    finished_at = time.monotonic()
    assert poll.result().json["status"] == "succeeded"
    assert poll.answered_at - finished_at < 2.0


def test_shutting_down_answers_held_polls_at_once_with_their_state(registry, customer):
    generation_id = submit(customer)
    poll = HeldPoll(customer, generation_id, wait=20)
    wait_until_waiting(registry)
    find_service(registry, ICompletionSignal).close()
    answer = poll.result(timeout=5)
    assert answer.json["status"] == "queued"
    assert poll.elapsed < 5


def test_the_sweeper_wakes_the_polls_of_a_job_it_gives_up(registry, customer, db):
    import datetime as dt

    from nproxy_core.db import utcnow
    from nproxy_core.generation.tasks import sweep_now

    generation_id = submit(customer)
    # A job whose every run died with its worker: the sweeper fails it.
    db.execute(
        sa.update(Generation)
        .where(Generation.id == uuid.UUID(generation_id))
        .values(
            status=GenerationStatus.RUNNING,
            attempts=3,
            lease_owner="dead-worker",
            lease_expires_at=utcnow() - dt.timedelta(minutes=1),
        )
    )
    db.commit()
    poll = HeldPoll(customer, generation_id, wait=20)
    wait_until_waiting(registry)
    assert sweep_now(registry).failed == 1
    swept_at = time.monotonic()
    answer = poll.result()
    assert answer.json["status"] == "failed"
    assert answer.json["error"]["code"] == "provider_unavailable"
    assert poll.answered_at - swept_at < 2.0


def test_the_in_process_signal_wakes_after_commit_and_never_on_rollback(tmp_path):
    from nproxy_core.db import session_factory
    from nproxy_core.generation.completion import LocalCompletionSignal

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'signal.sqlite'}")
    sessions = session_factory(engine)
    signal = LocalCompletionSignal()
    key = str(uuid.uuid4())
    with signal.subscribe(key) as waiter:
        with sessions.begin() as session:
            signal.announce(session, key)
            session.rollback()
        assert waiter.wait(0.2) is False
        with sessions.begin() as session:
            signal.announce(session, key)
            assert waiter.wait(0.05) is False  # not before the commit
        assert waiter.wait(0.2) is True
    engine.dispose()


def test_a_postgres_signal_on_sqlite_stops_start_up_naming_the_setting(base_settings, tmp_path):
    from nproxy_core.config import ConfigurationError, configure

    settings = {
        **base_settings,
        "sqlalchemy.url": f"sqlite:///{tmp_path / 'app.sqlite'}",
        "nproxy.generation.completion_signal": "postgres",
    }
    with pytest.raises(ConfigurationError, match=r"nproxy\.generation\.completion_signal"):
        configure(settings)
    settings["nproxy.generation.completion_signal"] = "carrier-pigeon"
    with pytest.raises(ConfigurationError, match=r"nproxy\.generation\.completion_signal"):
        configure(settings)
