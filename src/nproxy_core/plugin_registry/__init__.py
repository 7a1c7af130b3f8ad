"""The enabled plugins: found through entry points at start-up, served as :class:`IPlugins`.

A broken or unknown plugin stops start-up here, with one line naming it.
"""

from __future__ import annotations

from typing import Any

from nproxy_core.plugin_registry.interfaces import IPlugins
from nproxy_core.plugin_registry.loader import Plugins, discover, enabled_names, start_plugins

__all__ = ["IPlugins", "Plugins", "discover", "enabled_names", "start_plugins"]


def includeme(config: Any) -> None:
    config.register_service(start_plugins(config.get_settings()), IPlugins)
