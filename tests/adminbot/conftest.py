"""The Telegram tests: a fake Bot API server, and the real ``nproxy bot`` process against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
def start_bot(ini: str, tmp_path: Path, telegram: FakeTelegram) -> Iterator[Callable[[], Process]]:
    started: list[Process] = []

    def start() -> Process:
        process = Process(["-c", ini, "bot"], tmp_path / f"bot{len(started)}.log", tmp_path)
        started.append(process)
        telegram.wait_for_polling(timeout=60)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def bot(start_bot: Callable[[], Process]) -> Process:
    return start_bot()
