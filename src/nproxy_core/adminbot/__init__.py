"""The Telegram admin bot process (``nproxy bot``): pairing for strangers, commands and
buttons for paired admins, every change through the admin services other surfaces use; and
the daily report, sent from beat at ``nproxy.admin.daily_report_hour``."""

from __future__ import annotations

from typing import Any

from nproxy_core.plugins import setting
from nproxy_core.tasks import TASKS, crontab


def report_hour(value: Any) -> int:
    hour = int(value)
    if not 0 <= hour <= 23:
        raise ValueError(value)
    return hour


def includeme(config: Any) -> None:
    from nproxy_core.adminbot.tasks import daily_report

    config.scan("nproxy_core.adminbot.tasks", categories=TASKS)
    # Empty turns the report off.
    hour = setting(config.get_settings(), "nproxy.admin.daily_report_hour", cast=report_hour)
    if hour is not None:
        config.add_periodic_task(
            "adminbot.daily_report", daily_report, crontab(hour=hour, minute=0)
        )
