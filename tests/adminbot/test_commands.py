"""What a paired admin can do from Telegram: each command's answer and each button's effect,
with its audit row (surface ``telegram``); bad and hostile updates get a short answer."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fakes.telegram import FakeTelegram
from nproxy_core.audit import Actor, Surface
from nproxy_core.audit.models import AuditEntry
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.crypto import SecretBox
from nproxy_core.keypool.models import KeyState, ProviderKey
from nproxy_core.telegram.models import TelegramAdmin

ADMIN = 4242


@pytest.fixture
def paired(db: Session, user_factory: Any) -> TelegramAdmin:
    user = user_factory("ops@example.com", admin=True)
    admin = TelegramAdmin(
        telegram_id=ADMIN, chat_id=ADMIN, username="ops", user_id=user.id, paired_by="tests"
    )
    db.add(admin)
    db.commit()
    return admin


@pytest.fixture
def key_id(db: Session, bot_settings: dict[str, Any]) -> int:
    key = pool.add_key(
        db,
        SecretBox(bot_settings["nproxy.secret"]),
        provider="demo",
        secret="demo-key-0001",
        label="main",
        enabled_providers=["demo"],
        actor=Actor("tests", Surface.CLI),
    )
    key.state = KeyState.MANUAL_REVIEW
    db.commit()
    return key.id


def say(telegram: FakeTelegram, text: str) -> Any:
    seen = len(telegram.sent_to(ADMIN))
    telegram.send_text(ADMIN, text, username="ops")
    return telegram.wait_for_message(ADMIN, after=seen)


def press(telegram: FakeTelegram, data: str) -> Any:
    seen = len(telegram.sent_to(ADMIN))
    answers = len(telegram.callback_answers)
    telegram.press_button(ADMIN, data, username="ops")
    message = telegram.wait_for_message(ADMIN, after=seen)
    assert len(telegram.callback_answers) > answers  # the button stops spinning
    return message


def key_state(db: Session, key_id: int) -> KeyState:
    db.expire_all()
    return db.get(ProviderKey, key_id).state


def test_keys_lists_each_key_with_buttons_that_restore_and_disable_it_audited(
    bot, telegram, paired, key_id, db
):
    listing = say(telegram, "/keys")
    assert f"#{key_id} demo “main”" in listing.text and "manual_review" in listing.text
    assert "demo-key-0001" not in listing.text  # masked
    buttons = {b["text"]: b["callback_data"] for b in listing.buttons()}
    assert buttons == {
        f"Restore #{key_id}": f"k:restore:{key_id}",
        f"Disable #{key_id}": f"k:disable:{key_id}",
        f"Test #{key_id}": f"k:test:{key_id}",
    }

    assert "Restored" in press(telegram, f"k:restore:{key_id}").text
    assert key_state(db, key_id) == KeyState.ACTIVE
    # The same stale button again is refused and changes nothing.
    assert "already active" in press(telegram, f"k:restore:{key_id}").text

    assert "Disabled" in say(telegram, f"/disable {key_id}").text
    assert key_state(db, key_id) == KeyState.DISABLED
    assert "Restored" in say(telegram, f"/restore@nproxy_bot {key_id}").text

    entries = db.scalars(
        sa.select(AuditEntry).where(AuditEntry.surface == "telegram").order_by(AuditEntry.id)
    ).all()
    assert [e.action for e in entries] == ["key.restore", "key.disable", "key.restore"]
    assert all(e.actor == "telegram:@ops" and e.actor_user_id == paired.user_id for e in entries)
    assert entries[0].before["state"] == "manual_review" and entries[0].after["state"] == "active"


def test_status_and_help_answer(bot, telegram, paired, key_id):
    status = say(telegram, "/status")
    assert "manual_review: 1" in status.text and "Payments awaiting review: 0" in status.text
    assert "/keys" in say(telegram, "/help").text


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("/nonsense", "Unknown command"),
        ("/restore", "Usage: /restore KEY_ID"),
        ("/restore abc", "Usage: /restore KEY_ID"),
        ("/restore 99999", "no provider key"),
        ("/disable 1" + "9" * 40, "Usage"),
        ("just words", "/help"),
        ("x" * 4096, "/help"),
    ],
)
def test_bad_commands_get_a_short_answer(bot, telegram, paired, text, answer):
    assert answer in say(telegram, text).text


@pytest.mark.parametrize("data", ["k:restore:99999", "k:explode:1", "k:restore:1:2", "", "é" * 32])
def test_forged_or_stale_buttons_change_nothing(bot, telegram, paired, key_id, db, data):
    message = press(telegram, data)
    assert "no longer valid" in message.text or "no provider key" in message.text
    assert key_state(db, key_id) == KeyState.MANUAL_REVIEW
    assert (
        db.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.surface == "telegram")
        )
        == 0
    )


def test_a_revoked_admin_pressing_an_old_button_gets_pairing_instructions(
    bot, telegram, paired, key_id, db
):
    db.delete(paired)
    db.commit()
    message = press(telegram, f"k:restore:{key_id}")
    assert "nproxy pair" in message.text
    assert key_state(db, key_id) == KeyState.MANUAL_REVIEW
