"""What a paired admin can do from Telegram: each command's answer and each button's effect,
with its audit row (surface ``telegram``); bad and hostile updates get a short answer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fakes.telegram import FakeTelegram
from nproxy_core.audit import Actor, Surface
from nproxy_core.audit.models import AuditEntry
from nproxy_core.db import utcnow
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.crypto import SecretBox
from nproxy_core.keypool.models import KeyState, ProviderKey
from nproxy_core.telegram.models import TelegramAdmin

ADMIN = 4242
WINDOW = dt.timedelta(seconds=900)


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
    assert f"demo key 'main' (#{key_id})" in listing.text and "manual_review" in listing.text
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


@pytest.mark.parametrize(
    "data",
    [
        "k:restore:99999",
        "k:explode:1",
        "k:restore:1:2",
        "k:restore:\uff11",  # a full-width digit: isdigit() says yes, int() would too
        "g:x:0",
        "g:1",
        "g::0",
        "p:refund:1",
        "p:activate",
        "p:activate:1" + "0" * 20,
        "",
        "é" * 32,
    ],
)
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


def telegram_audit(db: Session, action: str) -> list[AuditEntry]:
    db.expire_all()
    return list(
        db.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.action == action, AuditEntry.surface == "telegram")
            .order_by(AuditEntry.id)
        )
    )


def test_a_key_test_runs_the_free_check_through_the_service_and_never_restores(
    bot, telegram, paired, key_id, db
):
    answer = say(telegram, f"/test {key_id}").text
    assert answer.startswith(
        "Key accepted; this does not prove it can generate images. "
        f"Key 'main' (#{key_id}), free check"
    )
    assert answer.endswith("State: manual review, out of service until an admin restores it.")
    assert "free check over" in press(telegram, f"k:test:{key_id}").text
    assert key_state(db, key_id) == KeyState.MANUAL_REVIEW
    entries = telegram_audit(db, "key.test")
    assert len(entries) == 2  # one per test, whatever the surface
    assert entries[0].actor == "telegram:@ops" and entries[0].after["test"]["outcome"] == "success"
    assert "Usage: /test KEY_ID" in say(telegram, "/test").text


def test_user_shows_exact_numbers_and_grant_needs_its_button_once(
    bot, telegram, paired, db, user_factory
):
    from nproxy_core.billing.models import BillingCycle

    customer = user_factory("Ann@Example.com")
    assert "no user with email nobody@example.com" in say(telegram, "/user nobody@example.com").text
    shown = say(telegram, "/user ann@example.com").text
    assert f"User #{customer.id} ann@example.com" in shown
    assert "Role: user; blocked: no" in shown and "Current cycle: none" in shown

    offer = say(telegram, "/grant ANN@example.com")
    assert "Grant ann@example.com one free cycle" in offer.text
    assert [b["callback_data"] for b in offer.buttons()] == [f"g:{customer.id}:0"]
    assert telegram_audit(db, "user.grant_cycle") == []  # asking is not granting

    granted = press(telegram, f"g:{customer.id}:0").text
    assert "Granted ann@example.com a free cycle" in granted
    # The same button again (a double tap, or a second admin): nothing more is granted.
    again = press(telegram, f"g:{customer.id}:0").text
    assert "nothing granted" in again
    cycles = db.scalars(sa.select(BillingCycle).where(BillingCycle.user_id == customer.id)).all()
    assert len(cycles) == 1 and cycles[0].grant_reason == "granted from Telegram with /grant"
    [entry] = telegram_audit(db, "user.grant_cycle")
    assert (entry.actor, entry.actor_user_id) == ("telegram:@ops", paired.user_id)
    assert entry.target_id == str(customer.id)

    cycles[0].used, cycles[0].reserved = 7, 2
    db.commit()
    shown = say(telegram, "/user ann@example.com").text
    limit = cycles[0].request_limit
    assert f"limit {limit}, used 7, reserved 2, left {limit - 9}" in shown


def test_payments_lists_the_review_queue_and_its_buttons_resolve_once(
    bot, telegram, paired, db, user_factory
):
    from admin_support import make_payment
    from nproxy_core.alerts.models import Alert, AlertState
    from nproxy_core.alerts.services import raise_in
    from nproxy_core.billing.models import BillingCycle
    from nproxy_core.billing.notifications import payment_subject
    from nproxy_core.telegram.alerts import TelegramAlerts

    assert "No payments await review" in say(telegram, "/payments").text
    customer = user_factory("payer@example.com")
    first = make_payment(db, customer, status="partially_paid", review="partially paid")
    second = make_payment(db, customer, status="finished", review="amount mismatch")
    make_payment(db, customer)  # not flagged: not listed
    telegram_outbox = [TelegramAlerts(wake=lambda: None)]
    raise_in(
        db,
        "payment_flagged",
        payment_subject(first.id),
        "partial",
        WINDOW,
        utcnow(),
        senders=telegram_outbox,
    )
    db.commit()

    listing = say(telegram, "/payments")
    assert f"#{first.id}" in listing.text and "partially paid" in listing.text
    assert f"#{second.id}" in listing.text and "amount mismatch" in listing.text
    assert [b["callback_data"] for b in listing.buttons()] == [
        f"p:activate:{first.id}",
        f"p:dismiss:{first.id}",
        f"p:activate:{second.id}",
        f"p:dismiss:{second.id}",
    ]

    assert "activated" in press(telegram, f"p:activate:{first.id}").text
    assert "already resolved" in press(telegram, f"p:dismiss:{first.id}").text
    assert "dismissed" in press(telegram, f"p:dismiss:{second.id}").text
    cycles = db.scalars(sa.select(BillingCycle).where(BillingCycle.user_id == customer.id)).all()
    assert [c.payment_id for c in cycles] == [first.id]
    entries = telegram_audit(db, "payment.resolve")
    assert [(e.target_id, e.after["resolution"]) for e in entries] == [
        (str(first.id), "activated"),
        (str(second.id), "dismissed"),
    ]
    assert db.scalars(sa.select(Alert.state)).one() == AlertState.RESOLVED
    assert "No payments await review" in say(telegram, "/payments").text
