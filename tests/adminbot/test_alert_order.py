"""Alert messages reach each chat in the order they were raised (issue 20, item 3): a message
that fails, waits out a 429 or is being sent by another sender holds back the later ones of
its chat, never those of another chat; several senders (threads, a worker process) at once
never reorder, lose or repeat one."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fakes.telegram import FakeTelegram
from generation_support import Process, rabbitmq_vhost, write_ini
from nproxy_core.alerts import AlertKind, IAlertNotifier
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.telegram import IBotAPI
from nproxy_core.telegram.alerts import LEASE, deliver_due
from nproxy_core.telegram.models import AlertMessage, TelegramAdmin
from nproxy_core.wiring import find_service

CHATS = (911, 912, 913)


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    with rabbitmq_vhost(f"nproxy_tg_order_{time.monotonic_ns()}") as url:
        yield url


@pytest.fixture
def settings(bot_settings: dict[str, Any], broker_url: str) -> dict[str, Any]:
    # Every repeat is news (no dedup window to speak of): raise, repeat and resolve each queue
    # a message, so that the order of many is at stake.
    return {
        **bot_settings,
        "celery.broker_url": broker_url,
        "nproxy.admin.alert_dedup_seconds": "0.000001",
    }


@pytest.fixture
def registry(make_app: Callable[..., Any], settings: dict[str, Any]) -> Any:
    return make_app(**{k.replace(".", "__"): v for k, v in settings.items()}).app.registry


@pytest.fixture
def admins(db: Session) -> tuple[int, ...]:
    for chat in CHATS:
        db.add(TelegramAdmin(telegram_id=chat, chat_id=chat, paired_by="tests"))
    db.commit()
    return CHATS


def queue(db: Session, *messages: tuple[int, str]) -> None:
    now = utcnow()
    for chat_id, text in messages:
        db.add(AlertMessage(chat_id=chat_id, text=text, created_at=now, next_attempt_at=now))
        db.flush()  # one at a time: ids in the order written
    db.commit()


def texts(telegram: FakeTelegram, chat_id: int) -> list[str]:
    return [m.text for m in telegram.sent_to(chat_id)]


def test_a_failing_message_holds_back_the_later_ones_of_its_chat_only(registry, telegram, db):
    queue(db, (1, "a1"), (2, "b1"), (1, "a2"), (2, "b2"))
    session_factory = find_service(registry, IDatabase).session_factory
    api = find_service(registry, IBotAPI)
    telegram.fail(times=1)  # a1's send fails

    wait = deliver_due(session_factory, api)
    assert wait is not None and wait > 0
    assert texts(telegram, 1) == [] and texts(telegram, 2) == ["b1", "b2"]
    db.expire_all()
    a2 = db.scalars(sa.select(AlertMessage).where(AlertMessage.text == "a2")).one()
    assert a2.sent_at is None and a2.attempts == 0  # never tried ahead of a1

    # Nothing new is due before a1's retry, whoever asks.
    assert deliver_due(session_factory, api) is None
    assert texts(telegram, 1) == []
    later = utcnow() + dt.timedelta(seconds=wait + 1)
    assert deliver_due(session_factory, api, clock=lambda: later) is None
    assert texts(telegram, 1) == ["a1", "a2"]


def test_a_message_another_sender_is_sending_holds_back_the_later_ones_of_its_chat(
    registry, telegram, db
):
    queue(db, (1, "a1"), (1, "a2"), (2, "b1"))
    # Another sender has a1 (its lease runs), and is slow to finish.
    db.execute(
        sa.update(AlertMessage)
        .where(AlertMessage.text == "a1")
        .values(next_attempt_at=utcnow() + LEASE, attempts=1)
    )
    db.commit()
    session_factory = find_service(registry, IDatabase).session_factory
    assert deliver_due(session_factory, find_service(registry, IBotAPI)) is None
    assert texts(telegram, 1) == [] and texts(telegram, 2) == ["b1"]


def test_each_chat_gets_its_alerts_in_the_order_raised_through_outages_and_429s(
    registry, settings, admins, telegram, db, tmp_path
):
    session_factory = find_service(registry, IDatabase).session_factory
    api = find_service(registry, IBotAPI)
    notifier = find_service(registry, IAlertNotifier)
    # A worker process sends too (the prompt task after each commit, its retries) alongside
    # the threads below, which stand for other workers and beat's watch.
    worker = Process(
        ["-c", str(write_ini(tmp_path, settings)), "worker", "--concurrency", "2"],
        tmp_path / "worker.log",
        tmp_path,
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        return run

    def sender() -> None:
        while not stop.is_set():
            deliver_due(session_factory, api)
            stop.wait(0.02)

    def raiser(n: int) -> None:
        for k in range(2):
            subject = f"key {n}.{k}"
            notifier.raise_alert(AlertKind.KEY_OUT_OF_FUNDS, subject, f"#{n}.{k} raised")
            for repeat in range(2):
                notifier.raise_alert(
                    AlertKind.KEY_OUT_OF_FUNDS, subject, f"#{n}.{k} repeat {repeat}"
                )
            notifier.resolve(AlertKind.KEY_OUT_OF_FUNDS, subject, f"#{n}.{k} resolved")

    try:
        worker.wait_for_log(" ready.")
        # Telegram fails and rate limits from the start, and again midway.
        telegram.fail(times=3)
        telegram.rate_limit(retry_after=1, times=1)
        senders = [threading.Thread(target=guarded(sender)) for _ in range(3)]
        raisers = [threading.Thread(target=guarded(lambda n=n: raiser(n))) for n in range(4)]
        for thread in senders + raisers:
            thread.start()
        for thread in raisers[:2]:
            thread.join()
        telegram.fail(times=2)
        telegram.rate_limit(retry_after=1, times=1)
        for thread in raisers[2:]:
            thread.join()

        deadline = time.monotonic() + 90
        while True:
            left = db.scalar(
                sa.select(sa.func.count())
                .select_from(AlertMessage)
                .where(AlertMessage.sent_at.is_(None))
            )
            if left == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert left == 0, f"{left} messages never sent"
    finally:
        stop.set()
        worker.stop()
    assert errors == []

    assert telegram.refused >= 7  # the outages and 429s did happen
    raised = db.scalars(sa.select(AlertMessage).order_by(AlertMessage.id)).all()
    assert len(raised) == 4 * 2 * 4 * len(CHATS)
    for chat in CHATS:
        expected = [m.text for m in raised if m.chat_id == chat]
        # In order, none lost, none twice (every text is unique).
        assert texts(telegram, chat) == expected
    # And what that order means for one key: raised, still open, still open, resolved.
    first = [t for t in texts(telegram, CHATS[0]) if "key 2.1" in t]
    assert [t.split(" ", 1)[0] for t in first] == ["⚠️", "⚠️", "⚠️", "✅"]
    assert "still open" in first[1] and "still open" in first[2]
