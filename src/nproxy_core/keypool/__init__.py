"""The provider key pool: keys, proxies, the router that hides failing keys, and its admin
actions (:mod:`.services`), commands (:mod:`.cli`) and balance job (:mod:`.tasks`).

The generation pipeline finds the router as the :class:`IKeyPoolRouter` service and calls
:meth:`~nproxy_core.keypool.router.KeyPoolRouter.route_image`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nproxy_core.keypool.interfaces import IKeyPoolRouter, ISecretBox
    from nproxy_core.keypool.router import (
        KeyPoolRouter,
        PoolUnavailable,
        ProviderNotEnabled,
        RoutedImage,
    )

__all__ = [
    "IKeyPoolRouter",
    "ISecretBox",
    "KeyPoolRouter",
    "PoolUnavailable",
    "ProviderNotEnabled",
    "RoutedImage",
]

# The package's face stays light: importing it (``nproxy keys --help`` imports ``.cli``) loads
# the router, its alerts and Telegram only when one of these names is first asked for.
_EXPORTS = {
    "IKeyPoolRouter": "nproxy_core.keypool.interfaces",
    "ISecretBox": "nproxy_core.keypool.interfaces",
    "KeyPoolRouter": "nproxy_core.keypool.router",
    "PoolUnavailable": "nproxy_core.keypool.router",
    "ProviderNotEnabled": "nproxy_core.keypool.router",
    "RoutedImage": "nproxy_core.keypool.router",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def includeme(config: Any) -> None:
    from nproxy_core.config import server_secrets
    from nproxy_core.keypool.crypto import SecretBox
    from nproxy_core.keypool.interfaces import IKeyPoolRouter, ISecretBox
    from nproxy_core.keypool.router import KeyPoolRouter
    from nproxy_core.keypool.tasks import (
        DEFAULT_BALANCE_INTERVAL,
        RECOVERED_ALERTS_INTERVAL,
        refresh_balances,
        resolve_recovered_alerts,
    )
    from nproxy_core.plugins import positive_int, setting
    from nproxy_core.tasks import TASKS
    from nproxy_core.wiring import register_shared_service

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
