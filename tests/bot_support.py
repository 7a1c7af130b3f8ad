"""The Telegram bots of ``nproxy bot``, started for a test and polling a fake Bot API.

Most tests run them in a thread of the test process (:class:`BotThread`): the same
applications as the process (``adminbot.bot.build_applications``, configured from the same
settings) in an event loop of their own, stopped as SIGTERM stops them. What that saves is the
process start: a bot process spends about three seconds of CPU on imports and configuration
before its first request to Telegram, which the test process has already paid. Tests about the
process itself (a restart, the console's pairing) start the real one (:func:`start_process`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import release_registry
from fakes.telegram import FakeTelegram
from generation_support import Process
from nproxy_core.adminbot.bot import start_in_thread
from nproxy_core.config import configure

START_SECONDS = 60


def polls_of(telegram: FakeTelegram) -> int:
    """How many times a bot has asked ``telegram`` for updates."""
    return sum(1 for name, _ in list(telegram.calls) if name == "getUpdates")


def wait_for_a_new_poll(telegram: FakeTelegram, polls: int, alive: Callable[[], bool]) -> None:
    """Until a bot asks ``telegram`` for updates once more than ``polls`` times; an
    AssertionError when ``alive`` says it ended first or it takes :data:`START_SECONDS`."""
    deadline = time.monotonic() + START_SECONDS
    while polls_of(telegram) <= polls:
        if not alive():
            raise AssertionError("the bots stopped before polling")
        if time.monotonic() > deadline:
            raise AssertionError(f"the bots did not poll within {START_SECONDS} s")
        time.sleep(0.02)


def start_process(ini: Path, log: Path, telegram: FakeTelegram) -> Process:
    """The real ``nproxy -c INI bot`` process, once it polls ``telegram``."""
    polls = polls_of(telegram)
    process = Process(["-c", str(ini), "bot"], log, log.parent)
    try:
        wait_for_a_new_poll(telegram, polls, lambda: process.popen.poll() is None)
    except AssertionError as failed:
        process.stop()
        raise AssertionError(f"{failed}:\n{process.log[-3000:]}") from None
    return process


class BotThread:
    """The bots configured from ``settings``, polling ``telegram`` until :meth:`stop`."""

    def __init__(self, settings: dict[str, Any], telegram: FakeTelegram) -> None:
        config = configure(dict(settings))
        config.commit()
        self.registry = config.registry
        self._until = threading.Event()
        polls = polls_of(telegram)
        self.thread = start_in_thread(self.registry, until=self._until)
        try:
            wait_for_a_new_poll(telegram, polls, self.thread.is_alive)
        except AssertionError as failed:
            self.stop()
            raise AssertionError(f"{failed} (see the captured log)") from None

    def stop(self) -> None:
        """Stop polling, finish the updates in hand and shut down, as on SIGTERM."""
        self._until.set()
        self.thread.join(timeout=30)
        release_registry(self.registry)
        assert not self.thread.is_alive(), "the bots did not stop within 30 s"
