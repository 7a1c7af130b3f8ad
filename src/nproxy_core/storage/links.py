"""Signed, expiring links to ``/media/{asset_id}`` that work without a session cookie: the images
the developer API hands to its clients (DESIGN 4.10).

The signature is an HMAC-SHA256 of the asset id and the expiry time, keyed with a key derived
from ``nproxy.secret``: a link cannot be made for another asset, nor made to last longer. Links
are signed with the current secret and checked against it and ``nproxy.secret_previous``, so a
link handed out before a rotation works until it expires (4.11).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from collections.abc import Sequence
from urllib.parse import urlencode

from zope.interface import Attribute, Interface, implementer


class LinkCheck(enum.Enum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


class IMediaLinks(Interface):
    """Signs and checks links to ``/media/{asset_id}``."""

    public_url = Attribute("the absolute base of the links")

    def signed_url(asset_id, seconds):
        """An absolute URL of the asset that works for ``seconds`` without a cookie."""

    def check(asset_id, expires, signature, now=None):
        """LinkCheck.VALID, EXPIRED or INVALID."""


@implementer(IMediaLinks)
class MediaLinks:
    def __init__(self, server_secrets: str | Sequence[str], public_url: str) -> None:
        """``server_secrets``: the current secret first, then the previous ones."""
        if isinstance(server_secrets, str):
            server_secrets = (server_secrets,)
        self._keys = [
            hmac.new(secret.encode(), b"nproxy media links v1", hashlib.sha256).digest()
            for secret in server_secrets
        ]
        self.public_url = public_url.rstrip("/")

    def _signature(self, asset_id: str, expires: int, key: bytes | None = None) -> str:
        message = f"{asset_id}\n{expires}".encode()
        return hmac.new(key or self._keys[0], message, hashlib.sha256).hexdigest()

    def signed_url(self, asset_id: object, seconds: int, now: float | None = None) -> str:
        asset = str(asset_id)
        expires = int((time.time() if now is None else now) + seconds)
        query = urlencode({"expires": expires, "signature": self._signature(asset, expires)})
        return f"{self.public_url}/media/{asset}?{query}"

    def check(
        self, asset_id: str, expires: str | None, signature: str | None, now: float | None = None
    ) -> LinkCheck:
        if not expires or not signature or not expires.isdigit() or len(expires) > 12:
            return LinkCheck.INVALID
        if not any(
            hmac.compare_digest(self._signature(asset_id, int(expires), key), signature)
            for key in self._keys
        ):
            return LinkCheck.INVALID
        if int(expires) <= (time.time() if now is None else now):
            return LinkCheck.EXPIRED
        return LinkCheck.VALID
