"""The developer API's services: its settings and the per-key rate limiter."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IApiSettings(Interface):
    """``nproxy.api.*``, read and checked once (see settings.ApiSettings)."""

    rate_limit = Attribute("limits.RateLimitItem: requests per key")
    max_concurrent_jobs = Attribute("int: unfinished generations per key")
    max_wait_seconds = Attribute("float: how long POST /v1/generate may wait")
    max_keys = Attribute("int: live keys per user")
    media_url_seconds = Attribute("int: how long a signed image URL works")


class IApiRateLimiter(Interface):
    """Counts requests per API key (``limits``; Redis when several processes share it)."""

    def hit(key_id, rate=None):
        """Count one request against ``rate`` (``N/period``; None: ``nproxy.api.rate_limit``);
        returns a RateState (allowed, limit, remaining, reset_at)."""


class IApiKeyHasher(Interface):
    """The keyed hash of API key secrets (keys.KeyHasher)."""

    def hash(secret):
        """Hex HMAC-SHA256 of the secret (keyed with the current ``nproxy.secret``)."""

    def hashes(secret):
        """The hash under every known secret, the current one first."""
