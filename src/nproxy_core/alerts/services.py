"""Stateful admin alerts: recorded as rows, told to the admins through every sender.

An alert is a condition, ``(kind, subject)``. Raising it opens a row (or counts a repeat on
the open one); a message goes out when it opens and then at most once per dedup window, and
names the repeats since the last message. Resolving closes the row and, if the admins were
told about it, tells them it cleared.

Each message is handed to every registered sender (:class:`IAlertSender`, Telegram being
one), which writes it to its own outbox in the same transaction as the alert and delivers it
after commit: a channel being slow, down or rate limiting never touches the work that raised
the alert. Messages of one condition are written in the order raised (raising and resolving
lock its open alert row).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from zope.interface import implementer

from nproxy_core.alerts.interfaces import AlertKind, IAlertNotifier, IAlertSender
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.db import utcnow

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
#: Keys of ``Session.info``: messages wait for this session's commit; its listener is set.
WAKE = "nproxy.alerts.wake"
LISTENING = "nproxy.alerts.listening"


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


def _queue(db: Session, alert: Alert, text: str, senders: Sequence[IAlertSender]) -> int:
    return sum(sender.queue(db, alert, text) for sender in senders)


def raise_in(
    db: Session,
    kind: str,
    subject: str,
    detail: str,
    dedup: dt.timedelta,
    now: dt.datetime,
    *,
    senders: Sequence[IAlertSender],
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
            queued = _queue(db, alert, f"⚠️ {title(kind)}: {subject}\n{detail}", senders)
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
    queued = _queue(db, alert, f"⚠️ {title(kind)} (still open): {subject}\n{detail}{since}", senders)
    if queued:
        alert.last_sent_at = now
        alert.sent_count = alert.count
    return queued


def resolve_in(
    db: Session,
    kind: str,
    subject: str,
    detail: str,
    now: dt.datetime,
    *,
    senders: Sequence[IAlertSender],
) -> int:
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
    return _queue(db, alert, text, senders)


@implementer(IAlertNotifier)
class AlertNotifier:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        senders: Sequence[IAlertSender],
        dedup_seconds: float,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self.senders = tuple(senders)
        self.dedup = dt.timedelta(seconds=dedup_seconds)
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
            lambda s: raise_in(
                s, str(kind), subject, detail, self.dedup, self._clock(), senders=self.senders
            ),
            db,
        )

    def resolve(
        self, kind: AlertKind, subject: str, detail: str = "", *, db: Session | None = None
    ) -> None:
        self._apply(
            lambda s: resolve_in(
                s, str(kind), subject, detail, self._clock(), senders=self.senders
            ),
            db,
        )

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
        """Ask every sender to deliver what is due; each one's periodic delivery covers a
        failed ask."""
        for sender in self.senders:
            try:
                sender.wake()
            except Exception:
                log.warning("could not ask an alert sender to deliver", exc_info=True)
