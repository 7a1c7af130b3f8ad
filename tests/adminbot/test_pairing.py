"""Pairing with the admin bot (DESIGN 4.8), the real ``nproxy bot`` against a fake Bot API."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
import sqlalchemy as sa

from cli_runner import nproxy
from cli_runner import one_line_error as refusal
from fakes.telegram import FakeTelegram
from nproxy_core.audit.models import AuditEntry
from nproxy_core.telegram.models import TelegramAdmin, TelegramPairing

CODE = re.compile(r"nproxy pair ([A-Z0-9]{8})\b")


def one_line_error(result: Any, *words: str) -> None:
    line = refusal(result)
    for word in words:
        assert word in line, line


def code_in(text: str) -> str:
    found = CODE.search(text)
    assert found, text
    return found.group(1)


def ask_code(telegram: FakeTelegram, user_id: int, text: str = "/start", **kw: Any) -> str:
    seen = len(telegram.sent_to(user_id))
    telegram.send_text(user_id, text, **kw)
    return code_in(telegram.wait_for_message(user_id, after=seen).text)


def test_a_stranger_pairs_from_the_console_and_is_told_within_ten_seconds(
    bot, telegram, ini, db, user_factory
):
    admin_user = user_factory("boss@example.com", admin=True)
    code = ask_code(telegram, 501, username="ada", first_name="Ada")
    assert set(code) <= set("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    # Asking again while the code is valid gives the same code.
    assert ask_code(telegram, 501, "hello there") == code

    one_line_error(nproxy("-c", ini, "pair", "ZZZZZZZZ", "--yes"), "unknown pairing code")
    one_line_error(nproxy("-c", ini, "pair", "not-a-code", "--yes"), "pairing code")

    declined = nproxy("-c", ini, "pair", code, stdin="n\n")
    assert declined.returncode != 0
    assert "Telegram id 501" in declined.stdout and "@ada" in declined.stdout
    assert db.scalar(sa.select(sa.func.count()).select_from(TelegramAdmin)) == 0

    before = len(telegram.sent_to(501))
    paired = nproxy("-c", ini, "pair", code.lower(), "--as", "Boss@example.com", stdin="y\n")
    assert paired.returncode == 0, paired.stderr
    assert "Telegram id 501, @ada, Ada" in paired.stdout
    started = time.monotonic()
    telegram.wait_for_message(501, after=before, contains="now have admin access", timeout=10)
    assert time.monotonic() - started < 10

    admin = db.scalars(sa.select(TelegramAdmin)).one()
    assert (admin.telegram_id, admin.username, admin.user_id) == (501, "ada", admin_user.id)
    entry = db.scalars(sa.select(AuditEntry).where(AuditEntry.action == "telegram.pair")).one()
    # The audit row names both: the operator who paired, and the account now linked.
    assert (entry.surface, entry.actor, entry.target_id) == ("cli", "console", "501")
    assert entry.after["email"] == "boss@example.com" and entry.after["user_id"] == admin_user.id
    assert entry.after["telegram_id"] == 501 and entry.after["username"] == "ada"

    one_line_error(nproxy("-c", ini, "pair", code, "--yes"), "already used")

    seen = len(telegram.sent_to(501))
    telegram.send_text(501, "/help")
    assert "/status" in telegram.wait_for_message(501, after=seen).text

    listed = nproxy("-c", ini, "telegram", "list")
    assert listed.returncode == 0 and "Telegram id 501, @ada" in listed.stdout

    revoked = nproxy("-c", ini, "telegram", "revoke", "501")
    assert revoked.returncode == 0, revoked.stderr
    one_line_error(nproxy("-c", ini, "telegram", "revoke", "501"), "not a paired admin")
    db.expire_all()
    assert db.scalar(sa.select(sa.func.count()).select_from(TelegramAdmin)) == 0
    assert (
        db.scalars(sa.select(AuditEntry).where(AuditEntry.action == "telegram.revoke"))
        .one()
        .before["telegram_id"]
        == 501
    )
    # Revoked: back to step 2, with a new code.
    assert ask_code(telegram, 501, "/status") != code


def test_an_expired_code_is_refused_and_a_new_one_is_given(bot, telegram, ini, db):
    code = ask_code(telegram, 601)
    db.execute(
        sa.update(TelegramPairing).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
    )
    db.commit()
    one_line_error(nproxy("-c", ini, "pair", code, "--yes"), "expired")
    assert ask_code(telegram, 601) != code


def test_at_most_ten_codes_wait_and_the_eleventh_user_is_told_to_try_later(bot, telegram, db):
    codes = {ask_code(telegram, 700 + n) for n in range(10)}
    assert len(codes) == 10
    telegram.send_text(711, "/start")
    answer = telegram.wait_for_message(711).text
    assert "try again later" in answer and "nproxy pair" not in answer
    assert db.scalar(sa.select(sa.func.count()).select_from(TelegramPairing)) == 10
    # A user already waiting still gets their code.
    assert ask_code(telegram, 700) in codes


@pytest.mark.parametrize(
    "text",
    [
        "/start",
        "/help",
        "/status",
        "/keys",
        "/restore 1",
        "/disable 1",
        "/user a@b.c",
        "/grant x",
        "/payments",
        "/nonsense",
        "plain words",
        "x" * 4096,
    ],
)
def test_a_stranger_gets_only_pairing_instructions(bot, telegram, text):
    telegram.send_text(800, text)
    message = telegram.wait_for_message(800)
    assert CODE.search(message.text) and message.reply_markup is None


def test_a_stranger_pressing_a_button_gets_only_pairing_instructions(bot, telegram):
    for data in ("k:restore:1", "k:disable:1", "forged", "x" * 64):
        seen = len(telegram.sent_to(801))
        telegram.press_button(801, data)
        message = telegram.wait_for_message(801, after=seen)
        assert CODE.search(message.text) and message.reply_markup is None
