"""Rate limits with the ``limits`` library (memory in development, Redis when several processes
share them): login, registration and password reset per IP and per account, and the per-user
limits on uploads, new conversations and checkouts (DESIGN 3, 9).

A limit setting is ``N/period``, or several joined by ``;`` (``10/minute;50/hour``): every
window must have room, so repeated abuse meets ever longer waits.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

from limits import RateLimitItem, parse_many, storage, strategies
from pyramid.request import Request

from nproxy_core.errors import RateLimited
from nproxy_core.i18n import _
from nproxy_core.plugins import setting

#: Addresses of the reverse proxies whose X-Forwarded-For is believed (production: Caddy).
TRUSTED_PROXIES = "nproxy.trusted_proxies"

#: Every limit, by action, with its setting and default.
LIMITS: dict[str, tuple[str, str]] = {
    # Any attempt per IP; failed attempts per account and IP.
    "login": ("nproxy.ratelimit.login", "10/minute"),
    # Failed attempts per account from addresses it never logged in from (DESIGN 9).
    "login_account": ("nproxy.ratelimit.login_account", "20/hour;100/day"),
    "register": ("nproxy.ratelimit.register", "5/minute"),
    "password_reset": ("nproxy.ratelimit.password_reset", "5/minute"),
    # Reset mails per account asked for from addresses it never logged in from.
    "password_reset_account": ("nproxy.ratelimit.password_reset_account", "10/day"),
    # Verification mails per account, the one sent at registration included (DESIGN 4.12).
    "verify_email": ("nproxy.ratelimit.verify_email", "5/hour"),
    "uploads": ("nproxy.limits.uploads", "60/hour"),
    "conversations": ("nproxy.limits.conversations", "100/hour"),
    "checkouts": ("nproxy.limits.checkouts", "10/hour"),
    # Free plans started per client IP, by any number of accounts (DESIGN 4.12).
    "free_grants": ("nproxy.limits.free_grants", "20/day"),
}

TOO_MANY = _("Too many attempts. Please wait a little and try again.")


class RateLimiter:
    def __init__(self, storage_url: str, limits: dict[str, list[RateLimitItem]]) -> None:
        self._storage = storage.storage_from_string(storage_url)
        self._strategy = strategies.MovingWindowRateLimiter(self._storage)
        self._limits = limits

    def hit(self, action: str, *identifiers: str, message: str = TOO_MANY) -> None:
        """Count one attempt of ``action`` against each identifier (an IP, an account).

        Raises :class:`RateLimited` when any of them is over its limit; an attempt refused
        for one identifier is still counted for the others, as an attacker's would be.
        """
        self._apply(self._strategy.hit, action, identifiers, message)

    def check(self, action: str, *identifiers: str, message: str = TOO_MANY) -> None:
        """Raise :class:`RateLimited` if any identifier has no room left; count nothing."""
        self._apply(self._strategy.test, action, identifiers, message)

    def count(self, action: str, *identifiers: str) -> None:
        """Count one event (a failure) against each identifier, without refusing anything."""
        for identifier in identifiers:
            if identifier:
                for item in self._limits[action]:
                    self._strategy.hit(item, action, identifier)

    def _apply(
        self, probe: Callable[..., bool], action: str, identifiers: tuple[str, ...], message: str
    ) -> None:
        refused = [
            (item, i)
            for i in identifiers
            if i
            for item in self._limits[action]
            if not probe(item, action, i)
        ]
        if not refused:
            return
        reset_at = max(
            self._strategy.get_window_stats(item, action, i).reset_time for item, i in refused
        )
        raise RateLimited(message, retry_after=int(reset_at - time.time()) + 1)

    def reset(self) -> None:
        self._storage.reset()


def _limits(value: str) -> list[RateLimitItem]:
    return parse_many(value)


def client_ip(request: Request) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy (Caddy), whose
    X-Forwarded-For names the client as the last entry (the one Caddy added itself; whatever
    the client sent before it is not to be believed). WebOb's ``client_addr`` would take the
    first entry from anyone, so a client could pick its own address."""
    peer = request.remote_addr or "unknown"
    if peer in request.registry.settings[TRUSTED_PROXIES]:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return peer


def ip_addresses(value: Any) -> frozenset[str]:
    """A cast for :func:`setting`: IP addresses separated by spaces or commas."""
    if isinstance(value, frozenset):
        return value
    addresses = frozenset(str(value).replace(",", " ").split())
    for address in addresses:
        ipaddress.ip_address(address)  # ValueError names the setting
    return addresses


def user_limit(request: Request, action: str) -> None:
    """Count one ``action`` (``uploads``, ``conversations``, ``checkouts``) of the user."""
    limiter = request.find_service(name="ratelimiter")
    limiter.hit(
        action,
        f"user:{request.identity.id}",
        message=_(
            "You have reached the limit on ${action} for now. Please try again later.",
            mapping={"action": action},
        ),
    )


def includeme(config: Any) -> None:
    settings = config.get_settings()
    settings[TRUSTED_PROXIES] = setting(
        settings, TRUSTED_PROXIES, default=frozenset(), cast=ip_addresses
    )
    limits = {
        action: setting(settings, name, cast=_limits) or _limits(default)
        for action, (name, default) in LIMITS.items()
    }
    limiter = RateLimiter(settings["nproxy.ratelimit.storage"], limits)
    config.register_service(limiter, name="ratelimiter")
