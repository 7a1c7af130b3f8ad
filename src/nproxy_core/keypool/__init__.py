"""The provider key pool: keys, proxies, the router that hides failing keys, and its admin
actions (:mod:`.services`), commands (:mod:`.cli`) and balance job (:mod:`.tasks`).

The generation pipeline finds the router as the :class:`IKeyPoolRouter` service and calls
:meth:`~nproxy_core.keypool.router.KeyPoolRouter.route_image`.
"""

from __future__ import annotations

from typing import Any

from nproxy_core.config import server_secrets
from nproxy_core.keypool.crypto import SecretBox
from nproxy_core.keypool.interfaces import IKeyPoolRouter, ISecretBox
from nproxy_core.keypool.router import (
    KeyPoolRouter,
    PoolUnavailable,
    ProviderNotEnabled,
    RoutedImage,
)
from nproxy_core.keypool.tasks import (
    DEFAULT_BALANCE_INTERVAL,
    RECOVERED_ALERTS_INTERVAL,
    refresh_balances,
    resolve_recovered_alerts,
)
from nproxy_core.plugins import positive_int, setting
from nproxy_core.tasks import TASKS
from nproxy_core.wiring import register_shared_service

__all__ = [
    "IKeyPoolRouter",
    "ISecretBox",
    "KeyPoolRouter",
    "PoolUnavailable",
    "ProviderNotEnabled",
    "RoutedImage",
]


def includeme(config: Any) -> None:
    settings = config.get_settings()
    config.register_service(SecretBox.from_secrets(server_secrets(settings)), ISecretBox)
    # One router per process: it keeps an engine and threads of its own.
    register_shared_service(
        config, lambda request: KeyPoolRouter.from_registry(request.registry), IKeyPoolRouter
    )
    config.scan("nproxy_core.keypool.tasks", categories=TASKS)
    interval = setting(
        settings,
        "nproxy.keypool.balance_interval_seconds",
        default=DEFAULT_BALANCE_INTERVAL,
        cast=positive_int,
    )
    config.add_periodic_task("keypool.refresh_balances", refresh_balances, interval)
    config.add_periodic_task(
        "keypool.resolve_recovered_alerts", resolve_recovered_alerts, RECOVERED_ALERTS_INTERVAL
    )
