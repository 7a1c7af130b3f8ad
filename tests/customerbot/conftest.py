"""The customer bot's tests: the real ``nproxy bot`` process against a fake Bot API, and a
real worker on a RabbitMQ vhost of this run where a generation is made."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bot_support import BotThread, start_process
from fakes.proxies import free_port
from fakes.telegram import FakeTelegram, SentMessage
from generation_support import LOGGING_INI, Process, SharedWorker, rabbitmq_vhost, write_ini
from nproxy_core.audit import Actor, Surface
from nproxy_core.customerbot.models import TelegramCustomer
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.crypto import SecretBox

TOKEN = "888000:TEST-customer-token"
BOT_USERNAME = "nproxy_test_bot"


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    with rabbitmq_vhost(f"nproxy_test_cb_{os.getpid()}") as url:
        yield url


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def bot_settings(
    base_settings: dict[str, Any],
    telegram: FakeTelegram,
    broker_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> dict[str, Any]:
    if "worker" in request.fixturenames:
        # The test's jobs go to the module's worker; the others' stay queued.
        broker_url = request.getfixturevalue("module_worker").broker_url
    return {
        **base_settings,
        "telegram.customer_bot_token": TOKEN,
        "telegram.customer_bot_username": BOT_USERNAME,
        "telegram.api_base": telegram.api_base,
        "celery.broker_url": broker_url,
        "celery.beat_schedule_file": str(tmp_path / "celerybeat-schedule"),
        "demo.delay_seconds": "0.05",
        "nproxy.state_dir": str(tmp_path / "state"),
    }


@pytest.fixture(scope="module")
def module_worker(
    base_settings: dict[str, Any], engine: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedWorker]:
    """One worker for the module's tests that make images, on a virtual host of its own. It
    never speaks to Telegram (the bot delivers), so its Bot API address is a closed port: a
    call there would fail the test that made it."""
    folder = tmp_path_factory.mktemp("worker")
    shared = SharedWorker(
        {
            **base_settings,
            "telegram.customer_bot_token": TOKEN,
            "telegram.customer_bot_username": BOT_USERNAME,
            "telegram.api_base": f"http://127.0.0.1:{free_port()}",
            "celery.beat_schedule_file": str(folder / "celerybeat-schedule"),
            "demo.delay_seconds": "0.05",
            "nproxy.state_dir": str(folder / "state"),
        },
        folder,
        f"nproxy_test_cb_{os.getpid()}_{folder.name}",
        engine,
    )
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def processes(tmp_path: Path, db: Session) -> Iterator[list[Process | BotThread]]:
    """Every process (and bot thread) a test starts, stopped before the tables are emptied
    (``db``)."""
    started: list[Process | BotThread] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
def start_bot(
    tmp_path: Path,
    bot_settings: dict[str, Any],
    telegram: FakeTelegram,
    processes: list[Process | BotThread],
) -> Callable[..., Process | BotThread]:
    """Start the bot: in a thread of this process (``bot_support``), or with ``process=True``
    as the real ``nproxy bot`` process."""

    def start(*, process: bool = False) -> Process | BotThread:
        if not process:
            processes.append(BotThread(bot_settings, telegram))
            return processes[-1]
        n = len(processes)
        ini = write_ini(tmp_path, bot_settings, f"bot{n}.ini", logging=LOGGING_INI)
        processes.append(start_process(ini, tmp_path / f"bot{n}.log", telegram))
        return processes[-1]

    return start


@pytest.fixture
def bot(start_bot: Callable[..., Process | BotThread]) -> Process | BotThread:
    return start_bot()


@pytest.fixture
def worker(
    module_worker: SharedWorker, bot_settings: dict[str, Any], db: Session
) -> Iterator[Process]:
    """The module's worker, with a key for the demo provider in the pool."""
    key = pool.add_key(
        db,
        SecretBox(bot_settings["nproxy.secret"]),
        provider="demo",
        secret="demo-key-cb01",
        enabled_providers=["demo"],
        actor=Actor("tests", Surface.CLI),
    )
    db.commit()
    assert key.id
    try:
        yield module_worker.acquire()
    finally:
        module_worker.release()


class Chat:
    """One Telegram user talking to the bot."""

    def __init__(self, telegram: FakeTelegram, user_id: int, username: str | None = None) -> None:
        self.telegram = telegram
        self.id = user_id
        self.username = username

    def seen(self) -> int:
        return len(self.telegram.sent_to(self.id))

    def say(self, text: str, contains: str = "") -> SentMessage:
        seen = self.seen()
        self.telegram.send_text(self.id, text, username=self.username)
        return self.telegram.wait_for_message(self.id, after=seen, contains=contains)

    def press(self, data: str, message: SentMessage | None = None, contains: str = "") -> Any:
        seen = self.seen()
        self.telegram.press_button(self.id, data, message=message, username=self.username)
        return self.telegram.wait_for_message(self.id, after=seen, contains=contains)

    def button(self, message: SentMessage, label: str) -> str:
        for button in message.buttons():
            if button["text"].startswith(label):
                return button["callback_data"]
        raise AssertionError(f"no button {label!r}: {message.buttons()}")


@pytest.fixture
def chat(telegram: FakeTelegram) -> Chat:
    return Chat(telegram, 5001, "ada")


def customer(db: Session, telegram_id: int) -> TelegramCustomer | None:
    db.expire_all()
    return db.scalar(sa.select(TelegramCustomer).where(TelegramCustomer.telegram_id == telegram_id))
