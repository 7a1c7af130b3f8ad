"""Loads the enabled plugins once at start-up and keeps them on the registry."""

from __future__ import annotations

from typing import Any

from pyramid.registry import Registry

from nproxy_core.config import ConfigurationError, asbool_setting, is_production
from nproxy_core.plugins import (
    PaymentProcessor,
    PluginError,
    Plugins,
    Provider,
    load_plugins,
)

REGISTRY_KEY = "nproxy.plugins"


def start_plugins(settings: dict[str, Any]) -> Plugins:
    """Load the plugins named in the settings, or raise :class:`ConfigurationError`."""
    try:
        plugins = load_plugins(settings)
    except PluginError as exc:
        raise ConfigurationError(str(exc)) from None
    if is_production(settings) and not asbool_setting(settings, "nproxy.allow_demo"):
        demos = [n for n, p in plugins.providers.items() if getattr(p, "is_demo", False)]
        demos += [n for n, p in plugins.payments.items() if p.is_demo]
        if demos:
            raise ConfigurationError(
                f"demo plugins {', '.join(sorted(set(demos)))!s} are refused in production "
                "(set 'nproxy.allow_demo = true' to allow them)"
            )
    return plugins


def get_plugins(registry: Registry) -> Plugins:
    return registry[REGISTRY_KEY]


def get_provider(registry: Registry, name: str) -> Provider | None:
    return get_plugins(registry).providers.get(name)


def get_processor(registry: Registry, name: str) -> PaymentProcessor | None:
    return get_plugins(registry).payments.get(name)


def includeme(config: Any) -> None:
    config.registry[REGISTRY_KEY] = start_plugins(config.get_settings())
