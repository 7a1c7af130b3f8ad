"""The Telegram bots of ``nproxy bot`` run in a thread of the test process.

The thread runs the same applications as the process (``adminbot.bot.build_applications``,
configured from the same settings) in an event loop of its own, and stops them as SIGTERM
does. What it saves is the process start: a bot process spends about three seconds of CPU on
imports and configuration before its first request to Telegram, which the test process has
already paid. Tests about the process itself (a restart, the console script) start the real
one (``generation_support.Process``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fakes.telegram import FakeTelegram
from nproxy_core.adminbot.bot import start_in_thread
from nproxy_core.config import configure
from nproxy_core.db import IDatabase
from nproxy_core.generation.interfaces import ICompletionSignal
from nproxy_core.wiring import find_service

START_SECONDS = 60


def polls_of(telegram: FakeTelegram) -> int:
    """How many times a bot has asked ``telegram`` for updates."""
    return sum(1 for name, _ in list(telegram.calls) if name == "getUpdates")


class BotThread:
    """The bots configured from ``settings``, polling ``telegram`` until :meth:`stop`."""

    def __init__(self, settings: dict[str, Any], telegram: FakeTelegram) -> None:
        config = configure(dict(settings))
        config.commit()
        self.registry = config.registry
        self._until = threading.Event()
        polls = polls_of(telegram)
        self.thread = start_in_thread(self.registry, until=self._until)
        deadline = time.monotonic() + START_SECONDS
        while polls_of(telegram) <= polls:
            if not self.thread.is_alive():
                self._close()
                raise AssertionError("the bots stopped before polling (see the captured log)")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the bots did not poll within {START_SECONDS} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop polling, finish the updates in hand and shut down, as on SIGTERM."""
        self._until.set()
        self.thread.join(timeout=30)
        self._close()
        assert not self.thread.is_alive(), "the bots did not stop within 30 s"

    def _close(self) -> None:
        find_service(self.registry, ICompletionSignal).close()
        find_service(self.registry, IDatabase).engine.dispose()
