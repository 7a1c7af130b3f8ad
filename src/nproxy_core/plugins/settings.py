"""Entry-point groups, the one configuration error, and reading a setting with a cast that
names the setting when its value is wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

PROVIDER_GROUP = "nproxy.providers"
PAYMENT_GROUP = "nproxy.payments"


class ConfigurationError(Exception):
    """A missing or malformed setting, or a plugin that cannot start: start-up stops with this
    one line, which names what is wrong."""


class PluginError(ConfigurationError):
    """A plugin is unknown, broken, duplicated or misconfigured; start-up stops."""


class PluginSettingError(PluginError):
    """A setting is missing or malformed. The message names the setting."""


def setting(
    settings: Mapping[str, Any],
    name: str,
    *,
    default: Any = None,
    cast: Any = str,
    required: bool = False,
) -> Any:
    """Read one plugin setting, failing with a message that names it."""
    raw = settings.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise PluginSettingError(f"missing required setting {name!r}")
        return default
    try:
        return cast(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise PluginSettingError(f"malformed setting {name!r}: {raw!r}") from exc


# Casts for :func:`setting`: each raises ValueError, which ``setting`` turns into a message
# naming the setting.


def positive_int(value: Any) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


def non_negative_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


def positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0:  # also refuses NaN
        raise ValueError(value)
    return number


def positive_seconds(value: Any) -> float:
    """A finite number of seconds above zero."""
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError("must be a positive number of seconds")
    return number


def price(value: Any) -> Decimal:
    """A finite amount of zero or more, exactly (USD prices of a provider)."""
    number = Decimal(str(value))
    if not number.is_finite() or number < 0:
        raise ValueError("must be a price of zero or more")
    return number


def api_base(value: Any) -> str:
    """A provider's API root: an http(s) URL with a host, without a trailing slash."""
    import httpx  # only providers read one: the settings module stays light to import

    url = str(value).rstrip("/")
    try:
        parts = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError("not a URL") from exc
    if parts.scheme not in ("http", "https") or not parts.host:
        raise ValueError("must be an http(s) URL")
    return url


def http_url(value: Any) -> str:
    """An absolute http(s) URL, without a trailing slash."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(value)
    return value.rstrip("/")


def boolean(value: Any) -> bool:
    """``true/yes/on/1`` (as Pyramid's ``asbool``) or ``false/no/off/0``; anything else is
    malformed."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "yes", "y", "on", "1"):
        return True
    if text in ("false", "f", "no", "n", "off", "0"):
        return False
    raise ValueError(value)


def one_of(*choices: str) -> Any:
    """A cast accepting only ``choices``."""

    def cast(value: Any) -> str:
        if value not in choices:
            raise ValueError(value)
        return value

    return cast
