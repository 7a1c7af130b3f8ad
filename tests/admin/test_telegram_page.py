"""The web admin's Telegram page (DESIGN 4.7): paired admins, pending pairings and recent
alerts; revoking goes through the same service as ``nproxy telegram revoke`` and is audited
once, with surface ``web``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from admin_support import audit_rows
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.db import utcnow
from nproxy_core.telegram.models import TelegramAdmin, TelegramPairing


def paired(db: Any, telegram_id: int, username: str | None, user_id: int | None = None) -> None:
    db.add(
        TelegramAdmin(
            telegram_id=telegram_id,
            chat_id=telegram_id,
            username=username,
            name="Ada <b>Lovelace</b>",
            user_id=user_id,
            paired_by="console",
        )
    )
    db.commit()


def test_the_page_lists_paired_admins_pending_codes_and_alerts_but_never_a_code(
    admin, admin_user, db
):
    paired(db, 501, "ada", admin_user.id)
    now = utcnow()
    db.add(
        TelegramPairing(
            code="ABCD2345",
            telegram_id=777,
            chat_id=777,
            username="stranger",
            created_at=now,
            expires_at=now + dt.timedelta(hours=1),
        )
    )
    db.add(
        TelegramPairing(
            code="EXPD2345",
            telegram_id=778,
            chat_id=778,
            username="late",
            created_at=now - dt.timedelta(hours=2),
            expires_at=now - dt.timedelta(hours=1),
        )
    )
    db.add(Alert(kind="key_manual_review", subject="demo key 3", detail="rejected", count=4))
    db.add(
        Alert(
            kind="payment_flagged",
            subject="payment 9",
            detail="partial",
            state=AlertState.RESOLVED,
            resolved_at=now,
        )
    )
    db.commit()

    page = admin.get("/admin/telegram")
    assert page.status_int == 200
    admins = page.html.select("#telegram-admins tbody tr")
    assert [row["data-telegram-id"] for row in admins] == ["501"]
    assert "@ada" in admins[0].get_text() and "boss@example.com" in admins[0].get_text()
    assert "<b>Lovelace</b>" not in page.text  # a Telegram name is the user's own: escaped
    pending = page.html.select("#telegram-pending tbody tr")
    assert len(pending) == 1 and "@stranger" in pending[0].get_text()
    # The code is for the one who asked; the expired one is not pending.
    assert "ABCD2345" not in page.text and "@late" not in page.text
    states = [row["data-state"] for row in page.html.select("#telegram-alerts tbody tr")]
    assert states == ["open", "resolved"]
    assert page.html.select_one('nav.admin-nav a[aria-current="page"]').get_text() == "Telegram"


def test_revoking_ends_access_through_the_service_with_one_web_audit_row(admin, admin_user, db):
    paired(db, 501, "ada")
    paired(db, 502, None)

    res, ok, errors = admin.act("/admin/telegram/501/revoke")
    assert res.location.endswith("/admin/telegram")
    assert ok == ["@ada no longer has access to the admin bot."] and errors == []
    db.expire_all()
    assert db.scalars(sa.select(TelegramAdmin.telegram_id)).all() == [502]
    [entry] = audit_rows(db, "telegram.revoke")
    assert (entry.surface, entry.actor, entry.actor_user_id) == (
        "web",
        "boss@example.com",
        admin_user.id,
    )
    assert entry.target_id == "501" and entry.before["username"] == "ada"

    # Again: refused, said why, nothing more changes or is audited.
    res, ok, errors = admin.act("/admin/telegram/501/revoke")
    assert ok == [] and errors == ["Telegram id 501 is not a paired admin"]
    assert len(audit_rows(db, "telegram.revoke")) == 1
    assert db.scalars(sa.select(TelegramAdmin.telegram_id)).all() == [502]


def test_the_page_says_when_no_bot_token_is_set(admin):
    page = admin.get("/admin/telegram")
    assert "No bot token is set" in page.text
    assert "Nobody is paired" in page.text


def waiting_code(db: Any, telegram_id: int, username: str) -> None:
    now = utcnow()
    db.add(
        TelegramPairing(
            code=f"CLR{telegram_id}"[:8],
            telegram_id=telegram_id,
            chat_id=telegram_id,
            username=username,
            created_at=now,
            expires_at=now + dt.timedelta(hours=1),
        )
    )
    db.commit()


def test_clearing_pending_pairings_drops_every_code_with_one_web_audit_row(admin, db):
    waiting_code(db, 771, "flood1")
    waiting_code(db, 772, "flood2")
    page = admin.get("/admin/telegram")
    [form] = page.html.select("#telegram-clear form")
    assert form["method"] == "post" and form["action"] == "/admin/telegram/pending/clear"
    assert form.select_one('input[name="csrf_token"]')
    assert form.get_text(strip=True) == "Clear pending pairings"

    # Without the form's token: refused, nothing dropped.
    assert admin.post("/admin/telegram/pending/clear", csrf=False).status_int == 403
    assert audit_rows(db, "telegram.clear_pending") == []

    res, ok, errors = admin.act("/admin/telegram/pending/clear")
    assert res.location.endswith("/admin/telegram")
    assert ok == ["Dropped 2 pending pairing codes; their askers may ask the bot again."]
    assert errors == []
    page = admin.get("/admin/telegram")
    assert page.html.select("#telegram-pending tbody tr") == []
    assert page.html.select("#telegram-clear") == []  # nothing left to clear
    [entry] = audit_rows(db, "telegram.clear_pending")
    assert (entry.surface, entry.actor) == ("web", "boss@example.com")
    assert entry.before == {"pending": 2, "telegram_ids": [771, 772]}
