"""Rate limiting for login, registration and password reset, per IP and per account, with the
``limits`` library (memory in development, Redis when several processes share the limits)."""

from __future__ import annotations

import time
from typing import Any

from limits import RateLimitItem, parse, storage, strategies
from pyramid.request import Request

from nproxy_core.errors import RateLimited
from nproxy_core.plugins import setting

ACTIONS = ("login", "register", "password_reset")


class RateLimiter:
    def __init__(self, storage_url: str, limits: dict[str, RateLimitItem]) -> None:
        self._storage = storage.storage_from_string(storage_url)
        self._strategy = strategies.MovingWindowRateLimiter(self._storage)
        self._limits = limits

    def hit(self, action: str, *identifiers: str) -> None:
        """Count one attempt of ``action`` against each identifier (an IP, an account).

        Raises :class:`RateLimited` when any of them is over its limit; an attempt refused
        for one identifier is still counted for the others, as an attacker's would be.
        """
        item = self._limits[action]
        refused = [i for i in identifiers if i and not self._strategy.hit(item, action, i)]
        if refused:
            reset_at = max(self._strategy.get_window_stats(item, action, i)[0] for i in refused)
            raise RateLimited(
                "Too many attempts. Please wait a little and try again.",
                retry_after=int(reset_at - time.time()) + 1,
            )

    def reset(self) -> None:
        self._storage.reset()


def _limit(value: str) -> RateLimitItem:
    return parse(value)


def client_ip(request: Request) -> str:
    # Behind Caddy the real address is in X-Forwarded-For; waitress/gunicorn are configured to
    # trust only the proxy, so request.client_addr is already the client's.
    return request.client_addr or "unknown"


def includeme(config: Any) -> None:
    settings = config.get_settings()
    limits = {
        action: setting(settings, f"nproxy.ratelimit.{action}", cast=_limit, required=True)
        for action in ACTIONS
    }
    limiter = RateLimiter(settings["nproxy.ratelimit.storage"], limits)
    config.register_service(limiter, name="ratelimiter")
