"""Telegram for admins: the allowlist and pairing (:mod:`.pairing`), the alert sender that
tells every paired admin from an outbox (:mod:`.alerts`), and the console commands
(:mod:`.cli`), and beat's own watch of the workers and the queue (:mod:`.watch`). The bot
process itself, which calls the admin services, is ``adminbot``."""

from __future__ import annotations

from typing import Any

from celery import signals

from nproxy_core.plugins import http_url, setting
from nproxy_core.tasks import CELERY_APP, TASKS, task_sender
from nproxy_core.telegram import watch
from nproxy_core.telegram.alerts import TelegramAlerts
from nproxy_core.telegram.botapi import BotAPI
from nproxy_core.telegram.interfaces import IBotAPI
from nproxy_core.telegram.tasks import DELIVERY_INTERVAL, deliver_alerts, prune_alert_messages
from nproxy_core.telegram.watch import queue_threshold

__all__ = ["IBotAPI"]


def includeme(config: Any) -> None:
    settings = config.get_settings()
    api_base = setting(
        settings, "telegram.api_base", default="https://api.telegram.org", cast=http_url
    )
    token = setting(settings, "telegram.bot_token", default="") or ""
    config.register_service(BotAPI(api_base, token.strip()), IBotAPI)
    registry = config.registry
    config.add_alert_sender(
        TelegramAlerts(wake=lambda: task_sender(registry, deliver_alerts)()), "telegram"
    )
    config.scan("nproxy_core.telegram.tasks", categories=TASKS)
    config.add_periodic_task("telegram.deliver_alerts", deliver_alerts, DELIVERY_INTERVAL)
    config.add_periodic_task("telegram.prune_alert_messages", prune_alert_messages, 24 * 3600)
    # A malformed threshold stops start-up here, not in beat much later.
    setting(settings, "nproxy.admin.alert_queue_depth", default=None, cast=queue_threshold)
    app = registry[CELERY_APP]

    def beat_started(sender: Any = None, **kwargs: Any) -> None:
        # Beat of this configuration (``nproxy beat``, ``nproxy dev``'s embedded one) watches
        # the workers and the queue itself: see :mod:`.watch`.
        if getattr(sender, "app", None) is app:
            watch.start(registry)

    signals.beat_init.connect(beat_started, weak=False)
