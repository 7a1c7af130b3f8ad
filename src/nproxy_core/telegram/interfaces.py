"""What other features ask of this one: raising and resolving admin alerts."""

from __future__ import annotations

import enum
from typing import Any

from zope.interface import Attribute, Interface


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
    """Stateful admin alerts sent to every paired Telegram admin from the queue.

    Never raises and never blocks on Telegram: a failure to record or send is logged and the
    caller's work goes on. With ``db`` (a session) the alert joins that session's transaction
    and is sent after it commits; without, it is recorded in a short transaction of its own.
    """

    def raise_alert(kind: AlertKind, subject: str, detail: str, *, db: Any = None) -> None:
        """The condition ``(kind, subject)`` holds (again); ``detail`` has no secret."""

    def resolve(kind: AlertKind, subject: str, detail: str = "", *, db: Any = None) -> None:
        """The condition cleared: the open alert closes ("resolved" sent if it was announced)."""


class IBotAPI(Interface):
    """The Telegram Bot API over plain HTTP (:class:`nproxy_core.telegram.botapi.BotAPI`)."""

    configured = Attribute("bool: a bot token is set (without one nothing is sent)")

    def scrub(text):
        """``text`` with the bot token masked, for logs and errors."""

    def send_message(chat_id, text, *, reply_markup=None):
        """Send ``text`` (clipped to Telegram's limit) to a chat; returns a ``SendResult``."""

    def call(method, body):
        """Call the Bot API method ``method`` with a JSON ``body``; returns a ``SendResult``."""
