"""``nproxy bot`` with both tokens serves the admin bot and the customer bot in one process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from customerbot.conftest import Chat
from fakes.telegram import FakeTelegram

ADMIN_TOKEN = "777111:TEST-admin-token"


@pytest.fixture
def admin_api(telegram: FakeTelegram) -> Iterator[FakeTelegram]:
    with FakeTelegram(token=ADMIN_TOKEN) as fake:
        telegram.mount(fake)
        yield fake


@pytest.fixture
def bot_settings(bot_settings, admin_api):
    return {**bot_settings, "telegram.bot_token": ADMIN_TOKEN}


def test_both_bots_answer_from_one_process(bot, telegram, admin_api, chat):
    admin_api.wait_for_polling()
    stranger = Chat(admin_api, 9100, "ops")
    assert "nproxy pair" in stranger.say("/start").text
    assert "account is ready" in chat.say("/start").text
    assert [c["command"] for c in admin_api.commands][:1] and telegram.commands
