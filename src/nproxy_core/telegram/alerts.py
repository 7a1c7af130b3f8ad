"""Stateful admin alerts: recorded as rows, sent to every paired admin from an outbox.

An alert is a condition, ``(kind, subject)``. Raising it opens a row (or counts a repeat on
the open one); a message goes out when it opens and then at most once per dedup window, and
names the repeats since the last message. Resolving closes the row and, if the admins were
told about it, tells them it cleared.

Messages are rows of :class:`AlertMessage` written in the same transaction as the alert, and
sent by a task after commit: Telegram being slow, down or rate limiting never touches the
work that raised the alert, and a message that could not be sent stays due until it is (the
periodic delivery picks up whatever the prompt one could not send).

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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker
from zope.interface import implementer

from nproxy_core.db import utcnow
from nproxy_core.telegram.botapi import BotAPI
from nproxy_core.telegram.interfaces import AlertKind, IAlertNotifier
from nproxy_core.telegram.models import Alert, AlertMessage, AlertState, TelegramAdmin

log = logging.getLogger("nproxy.alerts")

TITLES = {
    AlertKind.KEY_MANUAL_REVIEW: "Key needs review",
    AlertKind.KEY_OUT_OF_FUNDS: "Key out of funds",
    AlertKind.PROJECT_DAILY_QUOTA: "Project out of daily quota",
    AlertKind.POOL_EXHAUSTED: "Provider unavailable",
    AlertKind.PAYMENT_FLAGGED: "Payment flagged for review",
    AlertKind.PAYMENT_FAILED: "Renewal payment failed",
    AlertKind.WORKER_HEARTBEAT: "No worker heartbeat",
    AlertKind.QUEUE_DEPTH: "Queue too deep",
    AlertKind.KEY_UNREADABLE: "Keys cannot be decrypted",
}
#: How long a message being sent is kept from other senders (longer than one send).
LEASE = dt.timedelta(seconds=60)
#: Keys of ``Session.info``: messages wait for this session's commit; its listener is set.
WAKE = "nproxy.alerts.wake"
LISTENING = "nproxy.alerts.listening"
#: Backoff after a failed send grows to this and no further: after an outage, within it.
MAX_BACKOFF = 20.0


def title(kind: str) -> str:
    try:
        return TITLES[AlertKind(kind)]
    except ValueError:
        return kind


def _open_alert(db: Session, kind: str, subject: str) -> Alert | None:
    return db.scalar(
        sa.select(Alert)
        .where(Alert.kind == kind, Alert.subject == subject, Alert.state == AlertState.OPEN)
        .with_for_update()
    )


def open_alerts(db: Session, kind: AlertKind) -> list[Alert]:
    """The open alerts of ``kind``, oldest first (for a feature that judges when they clear)."""
    return list(
        db.scalars(
            sa.select(Alert)
            .where(Alert.kind == str(kind), Alert.state == AlertState.OPEN)
            .order_by(Alert.id)
        )
    )


def _queue(db: Session, alert: Alert, text: str) -> int:
    chats = db.scalars(sa.select(TelegramAdmin.chat_id).order_by(TelegramAdmin.id)).all()
    for chat_id in chats:
        db.add(AlertMessage(alert_id=alert.id, chat_id=chat_id, text=text))
    return len(chats)


def raise_in(
    db: Session, kind: str, subject: str, detail: str, dedup: dt.timedelta, now: dt.datetime
) -> int:
    """Record the alert in ``db``'s transaction; returns the messages queued."""
    subject = subject[:200]
    alert = _open_alert(db, kind, subject)
    if alert is None:
        try:
            with db.begin_nested():
                alert = Alert(
                    kind=kind,
                    subject=subject,
                    detail=detail,
                    first_seen=now,
                    last_seen=now,
                    count=1,
                    sent_count=0,
                )
                db.add(alert)
        except IntegrityError:
            # Another process opened it a moment ago: this is a repeat of theirs.
            alert = _open_alert(db, kind, subject)
            if alert is None:  # pragma: no cover - resolved in between
                return 0
        else:
            queued = _queue(db, alert, f"⚠️ {title(kind)}: {subject}\n{detail}")
            if queued:  # else the next repeat is news to whoever pairs meanwhile
                alert.last_sent_at = now
                alert.sent_count = 1
            return queued
    alert.count += 1
    alert.last_seen = now
    alert.detail = detail
    if alert.last_sent_at is not None and now - alert.last_sent_at < dedup:
        return 0
    repeats = alert.count - alert.sent_count
    since = (
        f"\n(seen {repeats} more times since the last message; {alert.count} in all "
        f"since {alert.first_seen:%Y-%m-%d %H:%M} UTC)"
    )
    queued = _queue(db, alert, f"⚠️ {title(kind)} (still open): {subject}\n{detail}{since}")
    if queued:
        alert.last_sent_at = now
        alert.sent_count = alert.count
    return queued


def resolve_in(db: Session, kind: str, subject: str, detail: str, now: dt.datetime) -> int:
    alert = _open_alert(db, kind, subject[:200])
    if alert is None:
        return 0
    alert.state = AlertState.RESOLVED
    alert.resolved_at = now
    if alert.last_sent_at is None:
        return 0
    text = f"✅ Resolved: {title(kind)}: {alert.subject}"
    if detail:
        text += f"\n{detail}"
    return _queue(db, alert, text)


@implementer(IAlertNotifier)
class AlertNotifier:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        dedup_seconds: float,
        wake: Callable[[], None],
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self.dedup = dt.timedelta(seconds=dedup_seconds)
        self._wake = wake
        self._clock = clock

    def raise_alert(
        self, kind: AlertKind, subject: str, detail: str, *, db: Session | None = None
    ) -> None:
        log.error(
            "admin alert: %s: %s: %s",
            title(kind),
            subject,
            detail,
            extra={"alert": str(kind), "subject": subject},
        )
        self._apply(
            lambda s: raise_in(s, str(kind), subject, detail, self.dedup, self._clock()), db
        )

    def resolve(
        self, kind: AlertKind, subject: str, detail: str = "", *, db: Session | None = None
    ) -> None:
        self._apply(lambda s: resolve_in(s, str(kind), subject, detail, self._clock()), db)

    def _apply(self, change: Callable[[Session], int], db: Session | None) -> None:
        try:
            if db is not None:
                # Inside the caller's transaction: a savepoint, so a failure here leaves the
                # caller's work intact; the messages are sent once it commits.
                with db.begin_nested():
                    queued = change(db)
                if queued:
                    self._wake_after_commit(db)
                return
            with self._session_factory() as session, session.begin():
                queued = change(session)
        except Exception:
            log.exception("could not record an admin alert")
            return
        if queued:
            self.wake()

    def _wake_after_commit(self, db: Session) -> None:
        # after_commit also fires when a savepoint is released: only the outermost commit
        # makes the messages visible to a worker.
        db.info[WAKE] = True
        if db.info.get(LISTENING):
            return
        db.info[LISTENING] = True

        def committed(session: Session) -> None:
            if not session.in_nested_transaction() and session.info.pop(WAKE, False):
                self.wake()

        def rolled_back(session: Session, previous: Any) -> None:
            if previous.parent is None:  # the whole transaction: its messages are gone
                session.info.pop(WAKE, None)

        sa.event.listen(db, "after_commit", committed)
        sa.event.listen(db, "after_soft_rollback", rolled_back)

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
