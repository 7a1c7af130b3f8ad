"""The Telegram tests: a fake Bot API server, and the real ``nproxy bot`` process against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot_support import BotThread, start_process
from fakes.telegram import FakeTelegram
from generation_support import Process, write_ini

TOKEN = "777000:TEST-telegram-token"


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def bot_settings(base_settings: dict[str, Any], telegram: FakeTelegram) -> dict[str, Any]:
    return {
        **base_settings,
        "telegram.bot_token": TOKEN,
        "telegram.api_base": telegram.api_base,
    }


@pytest.fixture
def ini(tmp_path: Path, bot_settings: dict[str, Any], db: Any) -> str:
    return str(write_ini(tmp_path, bot_settings, "bot.ini"))


@pytest.fixture
def start_bot(
    ini: str, tmp_path: Path, bot_settings: dict[str, Any], telegram: FakeTelegram
) -> Iterator[Callable[..., Process | BotThread]]:
    """Start the bot: in a thread of this process (``bot_support``), or with ``process=True``
    as the real ``nproxy bot`` process; every one stopped before the tables are emptied."""
    started: list[Process | BotThread] = []

    def start(*, process: bool = False) -> Process | BotThread:
        log = tmp_path / f"bot{len(started)}.log"
        bot = (
            start_process(Path(ini), log, telegram)
            if process
            else BotThread(bot_settings, telegram)
        )
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.stop()


@pytest.fixture
def bot(start_bot: Callable[..., Process | BotThread]) -> Process | BotThread:
    return start_bot()
