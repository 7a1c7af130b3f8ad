"""The plugin contract's version, and what a plugin is given of the settings.

``CONTRACT_VERSION`` is ``major.minor``. A plugin class says which version it was written for
(:attr:`Provider.contract_version`, :attr:`PaymentProcessor.contract_version`; left out, the
version of the core it runs on). The loader refuses a plugin whose major version differs from
the core's, with one line; a newer minor version than the core's is started with a warning
(the plugin may count on something this core lacks).

A plugin is built from its own settings only: the keys that start with its entry-point name
and a dot (``nanobanana.api_base`` for the provider named ``nanobanana``), plus what the
contract grants every plugin (:data:`GRANTED_SETTINGS`), plus ``nproxy.secret`` replaced by a
secret derived for that one plugin (:func:`plugin_secret`). The database URL, the site's own
secret, other plugins' keys and the rest of the settings are never passed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from nproxy_core.plugins.settings import PluginError

#: The version of the plugin contract this core speaks. 1.1 added, all optional: a model's
#: words beside its picture (``ImageRequest.with_text``, ``GeneratedImage.text``) and
#: ``NoImageAnswer``; processors' renewals (``recurring``), refunds (``refunds``) and Stars
#: (``charges_stars``). A 1.0 plugin runs unchanged.
CONTRACT_VERSION = "1.1"

#: Core settings every plugin receives besides its own prefix.
GRANTED_SETTINGS: tuple[str, ...] = ("nproxy.public_url", "nproxy.env")

#: The setting under which a plugin finds the secret derived for it (never the site's own).
SECRET_SETTING = "nproxy.secret"  # noqa: S105 - a setting name, not a value

_VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)")


def parse_version(text: Any) -> tuple[int, int]:
    """``"1.0"`` → ``(1, 0)``; anything but ``major.minor`` raises ValueError."""
    match = _VERSION.fullmatch(str(text).strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a major.minor version")
    return int(match.group(1)), int(match.group(2))


def check_contract(name: str, group: str, declared: Any, core: str = CONTRACT_VERSION) -> bool:
    """Refuse a plugin written for another major version of the contract.

    Raises :class:`PluginError` (one line naming the plugin, its version and the core's) on a
    different major version or a malformed one; returns True when the plugin targets a newer
    minor version than the core's (start it, but say so), else False.
    """
    core_major, core_minor = parse_version(core)
    try:
        major, minor = parse_version(declared)
    except ValueError:
        raise PluginError(
            f"plugin {name!r} ({group}) declares contract_version {declared!r}, which is not "
            f"major.minor; this nproxy speaks plugin contract {core}"
        ) from None
    if major != core_major:
        raise PluginError(
            f"plugin {name!r} ({group}) targets plugin contract {major}.{minor}; this nproxy "
            f"speaks {core} (major versions differ: use a release of the plugin for {core_major}.x)"
        )
    return minor > core_minor


def plugin_secret(site_secret: str, group: str, name: str) -> str:
    """The secret a plugin finds under ``nproxy.secret``: HMAC-SHA256 of the site's secret over
    the plugin's group and name, in hex. Stable across restarts and processes, different for
    every plugin, and no use for recovering the site's secret or anything it signs."""
    message = f"nproxy plugin secret\0{group}\0{name}".encode()
    return hmac.new(site_secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def scoped_settings(group: str, name: str, settings: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a plugin named ``name`` in ``group`` is built from (read-only): its own
    ``name.*`` keys, the :data:`GRANTED_SETTINGS` that are set, and its derived secret."""
    prefix = f"{name}."
    scoped = {k: v for k, v in settings.items() if isinstance(k, str) and k.startswith(prefix)}
    for key in GRANTED_SETTINGS:
        if settings.get(key) is not None:
            scoped[key] = settings[key]
    secret = settings.get(SECRET_SETTING)
    if isinstance(secret, str) and secret:
        scoped[SECRET_SETTING] = plugin_secret(secret, group, name)
    return MappingProxyType(scoped)
