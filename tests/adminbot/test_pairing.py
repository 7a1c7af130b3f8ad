"""Pairing with the admin bot (DESIGN 4.8), the real ``nproxy bot`` against a fake Bot API."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cli_runner import nproxy
from cli_runner import one_line_error as refusal
from fakes.telegram import FakeTelegram
from nproxy_core.audit.models import AuditEntry
from nproxy_core.cli import main
from nproxy_core.db import utcnow
from nproxy_core.telegram import pairing
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


def asker(telegram_id: int) -> pairing.Asker:
    return pairing.Asker(telegram_id, telegram_id, f"user{telegram_id}", "Someone")


def test_a_stranger_pairs_from_the_console_and_is_told_within_ten_seconds(
    start_bot, telegram, ini, db, user_factory
):
    start_bot(process=True)  # the real ``nproxy bot`` process, as an operator runs it
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


def test_a_flood_of_200_strangers_cannot_keep_a_new_admin_out(bot, telegram, ini, db):
    strangers = range(10_000, 10_200)
    for stranger in strangers:  # what the bot does for each (see the tests below for the bot)
        assert pairing.code_for(db, asker(stranger))
        db.commit()
    # The pool is full of their codes (the newest), and nothing refused anyone.
    waiting = pairing.pending(db)
    assert len(waiting) == pairing.MAX_PENDING
    assert {p.telegram_id for p in waiting} == set(strangers[-pairing.MAX_PENDING :])

    code = ask_code(telegram, 4242, username="operator")
    paired = nproxy("-c", ini, "pair", code, "--yes")
    assert paired.returncode == 0, paired.stderr
    assert "Telegram id 4242, @operator" in paired.stdout
    db.expire_all()
    assert db.scalars(sa.select(TelegramAdmin.telegram_id)).all() == [4242]
    telegram.wait_for_message(4242, contains="now have admin access")


def test_an_account_gets_one_live_code_and_a_few_new_ones_a_day(db):
    now = utcnow()
    first = pairing.code_for(db, asker(1), now)
    assert pairing.code_for(db, asker(1), now + dt.timedelta(minutes=59)) == first
    codes = {first}
    # Each hour the code expires and a new one may be had, up to the day's limit.
    for hour in range(1, pairing.MAX_CODES_PER_DAY):
        codes.add(pairing.code_for(db, asker(1), now + dt.timedelta(hours=hour)))
    assert None not in codes and len(codes) == pairing.MAX_CODES_PER_DAY
    later = now + dt.timedelta(hours=pairing.MAX_CODES_PER_DAY)
    assert pairing.code_for(db, asker(1), later) is None
    assert pairing.code_for(db, asker(2), later) is not None  # another account is not held
    # A day after the first code, the oldest no longer counts; unused codes are purged then.
    assert pairing.code_for(db, asker(1), now + dt.timedelta(hours=24, seconds=1)) is not None
    kept = db.scalars(sa.select(TelegramPairing.created_at)).all()
    assert min(kept) > now


def test_a_full_pool_gives_up_the_most_persistent_askers_oldest_code_first(db):
    now = utcnow()
    operator = pairing.code_for(db, asker(1), now)
    for n in range(2, pairing.MAX_PENDING + 1):  # the pool is now full
        assert pairing.code_for(db, asker(n), now + dt.timedelta(seconds=n))
    db.execute(
        sa.update(TelegramPairing)
        .where(TelegramPairing.telegram_id == 50)
        .values(
            expires_at=now  # stranger 50 was cleared, and asks again
        )
    )
    again = now + dt.timedelta(minutes=1)
    assert pairing.code_for(db, asker(50), again)
    assert pairing.code_for(db, asker(1000), again)  # full: someone gives way
    waiting = {p.telegram_id: p.code for p in pairing.pending(db, again)}
    assert len(waiting) == pairing.MAX_PENDING
    # Stranger 50 asked twice today: their code went, not the operator's (the oldest).
    assert 50 not in waiting and waiting[1] == operator and 1000 in waiting
    assert pairing.code_for(db, asker(1001), again)
    waiting = {p.telegram_id for p in pairing.pending(db, again)}
    assert 1 not in waiting and 1001 in waiting  # then the oldest


def test_an_account_that_asked_too_often_today_is_told_to_try_later(bot, telegram, db):
    now = utcnow()
    for n in range(pairing.MAX_CODES_PER_DAY):  # codes given up or cleared today
        db.add(
            TelegramPairing(
                code=f"GONE234{n}",
                telegram_id=333,
                chat_id=333,
                created_at=now - dt.timedelta(hours=n + 1),
                expires_at=now - dt.timedelta(hours=n),
            )
        )
    db.commit()
    telegram.send_text(333, "/start")
    answer = telegram.wait_for_message(333).text
    assert "try again later" in answer and "nproxy pair" not in answer
    assert ask_code(telegram, 334)  # another account is not held back


def test_pending_lists_the_askers_but_no_code_and_clear_drops_them_audited(bot, telegram, ini, db):
    codes = [ask_code(telegram, 300 + n, username=f"asker{n}") for n in range(3)]
    listed = cli(ini, "telegram", "pending")
    assert listed.exit_code == 0, listed.output
    assert "Telegram id 301, @asker1, Ada; asked " in listed.output
    assert "3 of at most 100 codes waiting." in listed.output
    assert not any(code in listed.output for code in codes)

    cleared = cli(ini, "telegram", "clear")
    assert cleared.exit_code == 0 and "Dropped 3 pending pairing codes." in cleared.output
    assert "No pairing codes are waiting." in cli(ini, "telegram", "pending").output
    one_line_error(nproxy("-c", ini, "pair", codes[0], "--yes"), "expired")
    [entry] = db.scalars(
        sa.select(AuditEntry).where(AuditEntry.action == "telegram.clear_pending")
    ).all()
    assert (entry.surface, entry.actor) == ("cli", "console")
    assert entry.before == {"pending": 3, "telegram_ids": [300, 301, 302]}
    # Their askers may ask again, and get a new code.
    assert ask_code(telegram, 300) not in codes


def cli(ini: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["-c", ini, *args])


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
