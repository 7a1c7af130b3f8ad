"""The admin bot's scheduled work: the daily report, sent through the alert outbox."""

from __future__ import annotations

from typing import Any

from nproxy_core.adminbot.report import queue_report
from nproxy_core.db import utcnow
from nproxy_core.tasks import task
from nproxy_core.telegram.tasks import deliver_alerts


@task(name="adminbot.daily_report")
def daily_report(request: Any) -> int:
    queued = queue_report(request.db, utcnow())
    if queued:
        request.enqueue(deliver_alerts)
    return queued
