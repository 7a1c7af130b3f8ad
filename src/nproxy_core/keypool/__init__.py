"""The provider key pool: keys, proxies, the router that hides failing keys, and its admin
actions (:mod:`.services`), commands (:mod:`.cli`) and balance job (:mod:`.tasks`).

The generation pipeline calls :func:`get_router` and then
:meth:`~nproxy_core.keypool.router.KeyPoolRouter.route_image`.
"""

from __future__ import annotations

from typing import Any

from pyramid.registry import Registry

from nproxy_core.keypool.crypto import SecretBox
from nproxy_core.keypool.router import (
    KeyPoolRouter,
    PoolUnavailable,
    ProviderNotEnabled,
    RoutedImage,
)

__all__ = [
    "KeyPoolRouter",
    "PoolUnavailable",
    "ProviderNotEnabled",
    "RoutedImage",
    "get_router",
    "get_secret_box",
]

ROUTER_KEY = "keypool.router"
SECRETS_KEY = "keypool.secrets"


def get_router(registry: Registry) -> KeyPoolRouter:
    return registry[ROUTER_KEY]


def get_secret_box(registry: Registry) -> SecretBox:
    return registry[SECRETS_KEY]


def includeme(config: Any) -> None:
    from nproxy_core.keypool.tasks import DEFAULT_BALANCE_INTERVAL, refresh_balances

    settings = config.get_settings()
    config.registry[SECRETS_KEY] = SecretBox(settings["nproxy.secret"])
    # Needs the database and the plugins, both included before the features.
    config.registry[ROUTER_KEY] = KeyPoolRouter.from_registry(config.registry)
    interval = int(
        settings.get("nproxy.keypool.balance_interval_seconds") or DEFAULT_BALANCE_INTERVAL
    )
    config.add_periodic_task("keypool.refresh_balances", refresh_balances, interval)
