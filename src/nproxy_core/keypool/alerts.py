"""The one place the key pool raises an admin alert.

Today an alert is an ERROR log line. The Telegram notifier hooks in here (and only here): it
replaces the body of :func:`alert_admins`, so every caller alerts through it unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("nproxy.alerts")


def alert_admins(subject: str, detail: str, **context: Any) -> None:
    """Tell the admins something needs them. ``detail`` must never contain a secret."""
    log.error("admin alert: %s: %s", subject, detail, extra={"alert": subject, **context})
