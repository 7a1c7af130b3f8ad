"""The developer API's settings (``nproxy.api.*``, DESIGN 3) and its per-key rate limiter."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Mapping
from typing import Any

from limits import RateLimitItem, parse, storage, strategies
from zope.interface import implementer

from nproxy_core.developer_api.interfaces import IApiRateLimiter, IApiSettings
from nproxy_core.plugins import positive_float, positive_int, setting


def _rate(value: str) -> RateLimitItem:
    return parse(value)


@implementer(IApiSettings)
@dataclasses.dataclass(frozen=True)
class ApiSettings:
    rate_limit: RateLimitItem
    max_concurrent_jobs: int = 8
    max_wait_seconds: float = 60.0
    max_keys: int = 10
    media_url_seconds: int = 3600

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ApiSettings:
        """Read ``nproxy.api.*``; raises ConfigurationError naming a bad setting."""
        p = "nproxy.api."
        return cls(
            rate_limit=setting(settings, p + "rate_limit", default=parse("60/minute"), cast=_rate),
            max_concurrent_jobs=setting(
                settings, p + "max_concurrent_jobs", default=8, cast=positive_int
            ),
            max_wait_seconds=setting(
                settings, p + "max_wait_seconds", default=60.0, cast=positive_float
            ),
            max_keys=setting(settings, p + "max_keys", default=10, cast=positive_int),
            media_url_seconds=setting(
                settings, p + "media_url_seconds", default=3600, cast=positive_int
            ),
        )


@dataclasses.dataclass(frozen=True)
class RateState:
    allowed: bool
    limit: int
    remaining: int
    #: When the window frees a request again (Unix seconds).
    reset_at: float

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }


@implementer(IApiRateLimiter)
class ApiRateLimiter:
    """A moving window per key, in the rate-limit storage the login limits use."""

    def __init__(self, storage_url: str, item: RateLimitItem) -> None:
        self._storage = storage.storage_from_string(storage_url)
        self._strategy = strategies.MovingWindowRateLimiter(self._storage)
        self._item = item

    def hit(self, key_id: Any, rate: str | None = None) -> RateState:
        """Count one request of the key against ``rate`` (``N/period``: the key's plan's
        ``api_rate_limit``), or ``nproxy.api.rate_limit`` when None."""
        item = self._item if rate is None else self._parsed(rate)
        identifier = str(key_id)
        allowed = self._strategy.hit(item, "api", identifier)
        reset_at, remaining = self._strategy.get_window_stats(item, "api", identifier)
        # Never later than one window from now (the storage's clock may run a little ahead).
        reset_at = min(reset_at, time.time() + item.get_expiry())
        return RateState(allowed, item.amount, max(0, remaining), reset_at)

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def _parsed(rate: str) -> RateLimitItem:
        # Plans' rates were checked when saved (billing.plans); a few distinct ones exist.
        return parse(rate)

    def reset(self) -> None:
        self._storage.reset()
