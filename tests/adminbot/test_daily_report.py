"""The daily report: scheduled by beat at ``nproxy.admin.daily_report_hour``, sent to every
paired admin through the alert outbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from nproxy_core.adminbot.tasks import daily_report
from nproxy_core.config import ConfigurationError
from nproxy_core.db import IDatabase
from nproxy_core.keypool.models import (
    AttemptOutcome,
    AttemptPath,
    KeyAttempt,
    KeyState,
    ProviderKey,
)
from nproxy_core.tasks import CELERY_APP, run_now
from nproxy_core.telegram import IBotAPI
from nproxy_core.telegram.alerts import deliver_due
from nproxy_core.telegram.models import TelegramAdmin
from nproxy_core.wiring import find_service


def beat_schedule(make_app: Any, **settings: str) -> dict[str, Any]:
    return make_app(**settings).app.registry[CELERY_APP].conf.beat_schedule


def test_the_report_is_scheduled_at_the_configured_hour_and_can_be_turned_off(make_app):
    schedule = beat_schedule(make_app, nproxy__admin__daily_report_hour="6")
    entry = schedule["adminbot.daily_report"]
    assert entry["task"] == "adminbot.daily_report"
    assert entry["schedule"].hour == {6} and entry["schedule"].minute == {0}
    assert "adminbot.daily_report" not in beat_schedule(
        make_app, nproxy__admin__daily_report_hour=""
    )
    with pytest.raises(ConfigurationError, match=r"nproxy\.admin\.daily_report_hour"):
        beat_schedule(make_app, nproxy__admin__daily_report_hour="25")


def test_the_report_reaches_every_admin_with_the_days_figures(
    make_app, bot_settings, telegram, db: Session
):
    app = make_app(**{k.replace(".", "__"): v for k, v in bot_settings.items()})
    registry = app.app.registry
    now = dt.datetime.now(dt.UTC)
    key = ProviderKey(
        provider="demo",
        label="k",
        secret_encrypted="x",
        secret_fingerprint="f" * 64,
        secret_mask="demo…0001",
        billing_group="acme-billing",
        project="acme",
        state=KeyState.OUT_OF_FUNDS,
    )
    db.add(key)
    db.flush()
    for outcome, cost in [(AttemptOutcome.SUCCESS, Decimal("0.039"))] * 3 + [
        (AttemptOutcome.RETRYABLE, None),
        (AttemptOutcome.KEY_REJECTED, None),
    ]:
        db.add(
            KeyAttempt(
                key_id=key.id,
                provider="demo",
                path=AttemptPath.DIRECT,
                outcome=outcome,
                latency_ms=10,
                estimated_cost=cost,
                created_at=now,
                picked_at=now,
                claim_version=1,
            )
        )
    for chat in (11, 12):
        db.add(TelegramAdmin(telegram_id=chat, chat_id=chat, paired_by="tests"))
    db.commit()

    assert run_now(registry, daily_report) == 2
    deliver_due(find_service(registry, IDatabase).session_factory, find_service(registry, IBotAPI))
    for chat in (11, 12):
        [message] = telegram.sent_to(chat)
        assert "Daily report" in message.text
        assert "key_rejected: 1" in message.text and "retryable: 1" in message.text
        assert "demo acme: $0.12" in message.text
        assert f"#{key.id} demo: out_of_funds" in message.text


def test_sent_alert_messages_are_pruned_after_thirty_days_and_unsent_ones_kept(make_app, db):
    from nproxy_core.telegram.models import AlertMessage
    from nproxy_core.telegram.tasks import prune_alert_messages

    registry = make_app().app.registry
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=31)
    db.add_all(
        [
            AlertMessage(chat_id=1, text="old, sent", created_at=old, sent_at=old),
            AlertMessage(chat_id=1, text="recent, sent", sent_at=now - dt.timedelta(days=1)),
            AlertMessage(chat_id=1, text="old, never sent", created_at=old),
        ]
    )
    db.commit()
    assert run_now(registry, prune_alert_messages) == 1
    db.expire_all()
    left = sorted(m.text for m in db.query(AlertMessage))
    assert left == ["old, never sent", "recent, sent"]
