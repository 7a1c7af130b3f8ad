"""What other features ask of this one, and what a sender offers it: the alert kinds, the
notifier that raises and resolves alerts, and the interface of a way admins are told."""

from __future__ import annotations

import enum
from typing import Any

from zope.interface import Interface


class AlertKind(enum.StrEnum):
    """Why the admins are alerted (DESIGN 4.8). An alert is a kind and a subject."""

    KEY_MANUAL_REVIEW = "key_manual_review"
    KEY_OUT_OF_FUNDS = "key_out_of_funds"
    #: A provider project's keys cooled down until the daily quota resets (4.5).
    PROJECT_DAILY_QUOTA = "project_daily_quota"
    #: Every key of a provider failed for an image (``provider_unavailable``).
    POOL_EXHAUSTED = "pool_exhausted"
    PAYMENT_FLAGGED = "payment_flagged"
    #: A subscription's renewal could not be charged (DESIGN 4.16); the customer was emailed.
    PAYMENT_FAILED = "payment_failed"
    WORKER_HEARTBEAT = "worker_heartbeat"
    QUEUE_DEPTH = "queue_depth"
    #: Stored provider keys no known secret decrypts: NPROXY_SECRET changed without the old
    #: one kept in NPROXY_SECRET_PREVIOUS (4.11). A configuration fault, not the keys'.
    KEY_UNREADABLE = "key_unreadable"


class IAlertNotifier(Interface):
    """Stateful admin alerts, told to the admins through every registered sender.

    Never raises and never blocks on a sender: a failure to record or send is logged and the
    caller's work goes on. With ``db`` (a session) the alert joins that session's transaction
    and is sent after it commits; without, it is recorded in a short transaction of its own.
    """

    def raise_alert(kind: AlertKind, subject: str, detail: str, *, db: Any = None) -> None:
        """The condition ``(kind, subject)`` holds (again); ``detail`` has no secret."""

    def resolve(kind: AlertKind, subject: str, detail: str = "", *, db: Any = None) -> None:
        """The condition cleared: the open alert closes ("resolved" sent if it was announced)."""


class IAlertSender(Interface):
    """One way the admins are told of alerts (Telegram is one), registered with
    ``config.add_alert_sender(sender, name)``.

    A sender keeps what it is given in its own outbox, written in the caller's transaction,
    and delivers it from there: a slow or failing channel never touches the work that raised
    the alert, and a message not yet delivered stays due until it is."""

    def queue(db: Any, alert: Any, text: str) -> int:
        """Write ``text`` about ``alert`` (an :class:`~nproxy_core.alerts.models.Alert`) to
        the outbox in ``db``'s transaction, once per recipient; returns how many."""

    def wake() -> None:
        """Ask for what was queued (and committed) to be delivered now; never raises."""
