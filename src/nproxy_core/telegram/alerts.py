"""Telegram as an alert sender: each message for every paired admin, sent from an outbox.

:class:`TelegramAlerts` is the :class:`~nproxy_core.alerts.IAlertSender` this feature
registers: the alert rules (:mod:`nproxy_core.alerts.services`) hand it each message, and it
writes one row of :class:`AlertMessage` per paired admin in the same transaction as the
alert. A task sends them after commit: Telegram being slow, down or rate limiting never
touches the work that raised the alert, and a message that could not be sent stays due until
it is (the periodic delivery picks up whatever the prompt one could not send).

Each chat gets its messages in the order they were raised (their ids): a "resolved" must never
overtake the alert it resolves, whether the older message is failing, waiting out a 429 or
being sent by another process at that moment. So a sender only ever takes the oldest unsent
message of a chat (:func:`_claim`), and anything in the way of that message holds back the
rest of its chat, and only its chat. Messages of one condition are written in the order raised
(raising and resolving lock its open alert row); two conditions raised at once by overlapping
transactions go out in the order they became visible.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased, sessionmaker
from zope.interface import implementer

from nproxy_core.alerts import IAlertSender
from nproxy_core.alerts.models import Alert
from nproxy_core.db import utcnow
from nproxy_core.telegram.botapi import BotAPI
from nproxy_core.telegram.models import AlertMessage, TelegramAdmin

log = logging.getLogger("nproxy.alerts")

#: How long a message being sent is kept from other senders (longer than one send).
LEASE = dt.timedelta(seconds=60)
#: Backoff after a failed send grows to this and no further: after an outage, within it.
MAX_BACKOFF = 20.0


@implementer(IAlertSender)
class TelegramAlerts:
    """The alert sender for the paired Telegram admins; ``wake`` asks a worker to send."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def queue(self, db: Session, alert: Alert, text: str) -> int:
        chats = db.scalars(sa.select(TelegramAdmin.chat_id).order_by(TelegramAdmin.id)).all()
        for chat_id in chats:
            db.add(AlertMessage(alert_id=alert.id, chat_id=chat_id, text=text))
        return len(chats)

    def wake(self) -> None:
        """Ask a worker to send what is due; the periodic delivery covers a failed ask."""
        try:
            self._wake()
        except Exception:
            log.warning(
                "could not enqueue alert delivery; the periodic delivery will send it",
                exc_info=True,
            )


#: Sent messages are kept this long (for the admin page), then deleted.
KEEP_SENT = dt.timedelta(days=30)


def prune_sent(session_factory: sessionmaker[Session], now: dt.datetime) -> int:
    """Delete messages sent more than :data:`KEEP_SENT` ago: the outbox stays small."""
    with session_factory() as db, db.begin():
        result = db.execute(sa.delete(AlertMessage).where(AlertMessage.sent_at < now - KEEP_SENT))
    return result.rowcount or 0


def _claim(db: Session, now: dt.datetime) -> AlertMessage | None:
    """The oldest due message that heads its chat's queue, locked; None when there is none.

    Only a chat's oldest unsent message may go: one failing, waiting out a retry or leased to
    another sender is not due, so its chat waits, while other chats' heads still qualify. A
    sender that finds the head locked (another one is claiming it) skips it, and the later
    messages of that chat still have it unsent before them."""
    earlier = aliased(AlertMessage)
    return db.scalar(
        sa.select(AlertMessage)
        .where(
            AlertMessage.sent_at.is_(None),
            AlertMessage.next_attempt_at <= now,
            ~sa.exists().where(
                earlier.chat_id == AlertMessage.chat_id,
                earlier.sent_at.is_(None),
                earlier.id < AlertMessage.id,
            ),
        )
        .order_by(AlertMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=AlertMessage)
    )


def deliver_due(
    session_factory: sessionmaker[Session],
    api: BotAPI,
    *,
    clock: Callable[[], dt.datetime] = utcnow,
    limit: int = 500,
) -> float | None:
    """Send the due messages, each chat's strictly oldest first, each claimed with a lease so
    that two senders never send one twice (see :func:`_claim`). A failed send holds back only
    its own chat; a 429 holds back every chat (Telegram's wait is for the bot). Returns the
    seconds to wait before trying again after a failure (Telegram's ``retry_after`` for a
    429), 0 when more may be due, or None once nothing is due."""
    if not api.configured:
        return None
    waits: list[float] = []
    for _ in range(limit):
        now = clock()
        with session_factory() as db, db.begin():
            message = _claim(db, now)
            if message is None:
                return min(waits, default=None)
            message.next_attempt_at = now + LEASE
            message.attempts += 1
            message_id, chat_id, text, attempts = (
                message.id,
                message.chat_id,
                message.text,
                message.attempts,
            )
        result = api.send_message(chat_id, text)
        now = clock()
        with session_factory() as db, db.begin():
            message = db.get(AlertMessage, message_id, with_for_update=True)
            if message is None:
                continue
            if result.ok:
                message.sent_at = now
                message.last_error = None
                continue
            message.last_error = result.error
            if result.permanent:
                # The chat blocked the bot or is gone: retrying will not help.
                log.warning(
                    "alert message %s to chat %s dropped: %s", message_id, chat_id, result.error
                )
                message.sent_at = now
                continue
            wait = (
                result.retry_after
                if result.retry_after is not None
                else min(MAX_BACKOFF, 2.0 ** min(attempts, 10))
            )
            message.next_attempt_at = now + dt.timedelta(seconds=wait)
            log.warning(
                "alert message %s not sent (%s); again in %.0f s", message_id, result.error, wait
            )
            if result.retry_after is not None:
                # Telegram's wait is for the bot, not just this chat: hold back the others.
                db.execute(
                    sa.update(AlertMessage)
                    .where(
                        AlertMessage.sent_at.is_(None),
                        AlertMessage.next_attempt_at < message.next_attempt_at,
                    )
                    .values(next_attempt_at=message.next_attempt_at)
                )
                return wait
            waits.append(wait)
    return 0.0
