"""Alerts reach the admins through every registered sender, Telegram being one: a sender
added with ``config.add_alert_sender`` is handed each message in the transaction that raised
or resolved the alert, and asked to deliver once that transaction commits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from pyramid.exceptions import ConfigurationConflictError
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.alerts import AlertKind, IAlertNotifier, IAlertSender
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.config import configure
from nproxy_core.db import IDatabase
from nproxy_core.telegram.models import AlertMessage, TelegramAdmin
from nproxy_core.wiring import find_service

SUBJECT = "nanobanana key 7"


@implementer(IAlertSender)
class Notebook:
    """A sender that writes down what it is handed, for ``recipients`` people."""

    def __init__(self, recipients: int = 1) -> None:
        self.recipients = recipients
        self.queued: list[tuple[int, str]] = []
        self.wakes = 0

    def queue(self, db: Session, alert: Alert, text: str) -> int:
        self.queued.append((alert.id, text))
        return self.recipients

    def wake(self) -> None:
        self.wakes += 1


def configured(base_settings: dict[str, Any], *senders: tuple[str, Notebook]) -> Any:
    config = configure(dict(base_settings))
    for name, sender in senders:
        config.add_alert_sender(sender, name)
    config.commit()
    return config.registry


@pytest.fixture
def made(base_settings: dict[str, Any]) -> Iterator[list[Any]]:
    registries: list[Any] = []
    yield registries
    for registry in registries:
        find_service(registry, IDatabase).engine.dispose()


def telegram_outbox(db: Session) -> list[tuple[int, str]]:
    return [
        (m.chat_id, m.text) for m in db.scalars(sa.select(AlertMessage).order_by(AlertMessage.id))
    ]


def test_a_second_sender_is_told_of_every_alert_alongside_telegram(base_settings, made, db):
    db.add(TelegramAdmin(telegram_id=31, chat_id=31, paired_by="tests"))
    db.commit()
    notebook = Notebook()
    registry = configured(base_settings, ("notebook", notebook))
    made.append(registry)
    notifier = find_service(registry, IAlertNotifier)

    notifier.raise_alert(AlertKind.KEY_MANUAL_REVIEW, SUBJECT, "key rejected")
    notifier.resolve(AlertKind.KEY_MANUAL_REVIEW, SUBJECT, "restored by ops")

    texts = [text for _, text in notebook.queued]
    assert len(texts) == 2
    assert texts[0].startswith("⚠️ Key needs review: nanobanana key 7") and "rejected" in texts[0]
    assert texts[1].startswith("✅ Resolved: Key needs review") and "restored by ops" in texts[1]
    # Telegram was handed the very same messages, one per paired admin.
    assert telegram_outbox(db) == [(31, texts[0]), (31, texts[1])]
    assert notebook.wakes == 2


def test_a_sender_is_asked_to_deliver_only_once_the_raising_transaction_commits(
    base_settings, made, db
):
    notebook = Notebook()
    registry = configured(base_settings, ("notebook", notebook))
    made.append(registry)
    notifier = find_service(registry, IAlertNotifier)
    session_factory = find_service(registry, IDatabase).session_factory

    with session_factory() as work:
        notifier.raise_alert(AlertKind.QUEUE_DEPTH, "queue", "deep", db=work)
        assert len(notebook.queued) == 1 and notebook.wakes == 0
        work.rollback()
    assert notebook.wakes == 0

    with session_factory() as work:
        notifier.raise_alert(AlertKind.QUEUE_DEPTH, "queue", "deep again", db=work)
        work.commit()
    assert notebook.wakes == 1
    alert = db.scalars(sa.select(Alert)).one()
    assert (alert.state, alert.sent_count) == (AlertState.OPEN, 1)


def test_an_alert_no_sender_could_tell_anyone_stays_news_for_the_next_repeat(
    base_settings, made, db
):
    notebook = Notebook(recipients=0)  # and no Telegram admin is paired
    registry = configured(base_settings, ("notebook", notebook))
    made.append(registry)
    notifier = find_service(registry, IAlertNotifier)

    notifier.raise_alert(AlertKind.POOL_EXHAUSTED, "provider demo", "every key failed")
    alert = db.scalars(sa.select(Alert)).one()
    assert (alert.last_sent_at, alert.sent_count) == (None, 0)
    assert notebook.wakes == 0

    notebook.recipients = 1
    notifier.raise_alert(AlertKind.POOL_EXHAUSTED, "provider demo", "still failing")
    assert "still open" in notebook.queued[-1][1] and notebook.wakes == 1


def test_two_senders_of_one_name_are_a_configuration_conflict(base_settings):
    config = configure(dict(base_settings))
    config.add_alert_sender(Notebook(), "notebook")
    config.add_alert_sender(Notebook(), "notebook")
    with pytest.raises(ConfigurationConflictError):
        config.commit()
