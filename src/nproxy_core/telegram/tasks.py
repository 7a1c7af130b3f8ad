"""Tasks of the Telegram feature: alert delivery (prompt and periodic)."""

from __future__ import annotations

from typing import Any

from nproxy_core.db import IDatabase, utcnow
from nproxy_core.tasks import celery_task, task
from nproxy_core.telegram.interfaces import IBotAPI

#: The periodic delivery's interval: the longest an undelivered alert waits after an outage.
DELIVERY_INTERVAL = 10


@task(name="telegram.prune_alert_messages")
def prune_alert_messages(request: Any) -> int:
    from nproxy_core.telegram.alerts import prune_sent

    return prune_sent(request.find_service(IDatabase).session_factory, utcnow())


@task(name="telegram.deliver_alerts")
def deliver_alerts(request: Any) -> None:
    """Send the due alert messages; after a 429 or an outage, try again when it makes sense."""
    from nproxy_core.telegram.alerts import deliver_due

    wait = deliver_due(
        request.find_service(IDatabase).session_factory, request.find_service(IBotAPI)
    )
    if wait is not None:
        # Sooner than the periodic run when Telegram asked for less (429 retry_after).
        celery_task(request.registry, deliver_alerts).apply_async(countdown=max(wait, 0.5))
