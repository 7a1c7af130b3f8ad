"""Finds plugins through their entry points and starts those the settings enable.

Each enabled plugin's class is checked against the plugin contract version (a different major
version stops start-up with one line) and built from its own settings only
(:func:`nproxy_core.plugins.scoped_settings`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from zope.interface import implementer

from nproxy_core.plugin_registry.interfaces import IPlugins
from nproxy_core.plugins import (
    CONTRACT_VERSION,
    PAYMENT_GROUP,
    PROVIDER_GROUP,
    ConfigurationError,
    PaymentProcessor,
    PluginError,
    Provider,
    boolean,
    check_contract,
    scoped_settings,
    setting,
)

log = logging.getLogger(__name__)


@implementer(IPlugins)
@dataclass
class Plugins:
    providers: dict[str, Provider]
    payments: dict[str, PaymentProcessor]

    def provider(self, name: str) -> Provider | None:
        return self.providers.get(name)

    def processor(self, name: str) -> PaymentProcessor | None:
        return self.payments.get(name)


#: The last reading of each group's entry points, with the path it was read from.
_READ: dict[str, tuple[tuple[tuple[str, int | None], ...], tuple[metadata.EntryPoint, ...]]] = {}
_READING = threading.Lock()


def _path_state() -> tuple[tuple[str, int | None], ...]:
    """The import path and each folder's modification time: installing or removing a
    distribution adds or removes its metadata folder, which changes its folder's time."""
    state: list[tuple[str, int | None]] = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, None))
    return tuple(state)


def entry_points(group: str) -> tuple[metadata.EntryPoint, ...]:
    """The group's entry points, read again only when the import path or a folder on it has
    changed since the last reading: reading every installed distribution's metadata costs
    about 30 ms, and the app is configured more than once in a process (the CLI, the tests)."""
    state = _path_state()
    with _READING:
        read = _READ.get(group)
        if read is None or read[0] != state:
            read = (state, tuple(metadata.entry_points(group=group)))
            _READ[group] = read
    return read[1]


def discover(group: str) -> dict[str, metadata.EntryPoint]:
    """All entry points of a group by name; two distributions claiming one name is an error."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in entry_points(group):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise PluginError(
                f"duplicate plugin {ep.name!r} in {group}: {other.value} and {ep.value}"
            )
        found[ep.name] = ep
    return dict(sorted(found.items()))


def enabled_names(settings: Mapping[str, Any], key: str) -> list[str]:
    raw = settings.get(key) or ""
    names = [n for n in raw.replace(",", " ").split() if n]
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise PluginError(f"setting {key!r} names {n!r} twice")
        seen.add(n)
    return names


def _load(group: str, key: str, base: type, settings: Mapping[str, Any]) -> dict[str, Any]:
    available = discover(group)
    loaded: dict[str, Any] = {}
    for name in enabled_names(settings, key):
        ep = available.get(name)
        if ep is None:
            known = ", ".join(available) or "none"
            raise PluginError(f"setting {key!r} names unknown plugin {name!r} (installed: {known})")
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must stop start-up, whatever it raised
            raise PluginError(f"plugin {name!r} ({ep.value}) failed to load: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"plugin {name!r} ({ep.value}) is not a {base.__name__}")
        declared = getattr(cls, "contract_version", CONTRACT_VERSION)
        if check_contract(name, group, declared):
            log.warning(
                "plugin %r (%s) targets plugin contract %s, newer than this nproxy's %s: "
                "it may count on something this version lacks",
                name,
                group,
                declared,
                CONTRACT_VERSION,
            )
        try:
            instance = cls(scoped_settings(group, name, settings))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {name!r} failed to start: {exc}") from exc
        instance.name = name
        loaded[name] = instance
    return loaded


def load_plugins(settings: Mapping[str, Any]) -> Plugins:
    """Load and start the enabled plugins, or raise :class:`PluginError`."""
    return Plugins(
        providers=_load(PROVIDER_GROUP, "nproxy.providers", Provider, settings),
        payments=_load(PAYMENT_GROUP, "nproxy.payments", PaymentProcessor, settings),
    )


def start_plugins(settings: Mapping[str, Any]) -> Plugins:
    """Load the plugins named in the settings, refusing the demo ones in production unless
    ``nproxy.allow_demo`` says otherwise; raises :class:`ConfigurationError`."""
    plugins = load_plugins(settings)
    production = settings.get("nproxy.env") == "production"
    if production and not setting(settings, "nproxy.allow_demo", default=False, cast=boolean):
        demos = [n for n, p in plugins.providers.items() if getattr(p, "is_demo", False)]
        demos += [n for n, p in plugins.payments.items() if p.is_demo]
        if demos:
            raise ConfigurationError(
                f"demo plugins {', '.join(sorted(set(demos)))!s} are refused in production "
                "(set 'nproxy.allow_demo = true' to allow them)"
            )
    return plugins
