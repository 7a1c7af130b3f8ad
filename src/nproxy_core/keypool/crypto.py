"""Provider key secrets at rest: Fernet with a key derived from ``nproxy.secret`` (HKDF).

The secret can rotate (DESIGN 4.11): the box encrypts and fingerprints with the current
secret and decrypts with it or any of ``nproxy.secret_previous`` (as ``MultiFernet`` does), so
keys stored under an old secret keep working until ``nproxy secrets rotate`` re-encrypts them.
A Fernet token is authenticated, so trying each key in turn is unambiguous: a token opens with
the key that made it and no other. A token none of them opens is a configuration fault (the
secret changed without the old one kept), never the provider's verdict on the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from zope.interface import implementer

from nproxy_core.keypool.interfaces import ISecretBox

__all__ = ["SecretBox", "SecretUnreadable", "mask_secret"]

# Distinct HKDF "info" labels give independent keys for encryption and fingerprints, so one
# can never be used to attack the other. Changing them makes every stored key unreadable.
_ENCRYPTION_INFO = b"nproxy provider-key encryption v1"
_FINGERPRINT_INFO = b"nproxy provider-key fingerprint v1"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with ``nproxy.secret`` nor any of
    ``nproxy.secret_previous`` (the secret changed without the old one kept, or the row is
    damaged)."""


def _derive(master: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        master.encode("utf-8")
    )


@implementer(ISecretBox)
class SecretBox:
    """Encrypts, decrypts and fingerprints provider key secrets."""

    def __init__(self, master_secret: str, previous: Sequence[str] = ()) -> None:
        if not master_secret:
            raise ValueError("nproxy.secret is empty")
        masters = [master_secret, *(p for p in previous if p and p != master_secret)]
        # Current first: encryption and fingerprints use it; decryption tries it first.
        self._fernets = [
            Fernet(base64.urlsafe_b64encode(_derive(m, _ENCRYPTION_INFO))) for m in masters
        ]
        self._fingerprint_keys = [_derive(m, _FINGERPRINT_INFO) for m in masters]

    @classmethod
    def from_secrets(cls, secrets: Sequence[str]) -> SecretBox:
        """A box for ``secrets``, the current one first (:func:`config.server_secrets`)."""
        return cls(secrets[0], secrets[1:])

    def encrypt(self, secret: str) -> str:
        return self._fernets[0].encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        return self.open(token)[0]

    def open(self, token: str) -> tuple[str, bool]:
        """(the secret, whether the current secret encrypted it); SecretUnreadable when no
        known secret did."""
        try:
            data = token.encode("ascii")
        except (UnicodeError, AttributeError) as exc:
            raise SecretUnreadable("the stored key is not a Fernet token") from exc
        for index, fernet in enumerate(self._fernets):
            try:
                return fernet.decrypt(data).decode("utf-8"), index == 0
            except (InvalidToken, ValueError):
                continue
        raise SecretUnreadable(
            "the stored key cannot be decrypted with nproxy.secret nor any of "
            "nproxy.secret_previous (was NPROXY_SECRET changed without keeping the old one "
            "in NPROXY_SECRET_PREVIOUS?)"
        )

    def fingerprint(self, secret: str) -> str:
        """The fingerprint stored with a key: keyed with the current secret."""
        return self._fingerprint(self._fingerprint_keys[0], secret)

    def fingerprints(self, secret: str) -> list[str]:
        """The fingerprint of ``secret`` under every known secret, the current one first: a
        key stored before a rotation is found by one of the others."""
        return [self._fingerprint(key, secret) for key in self._fingerprint_keys]

    @staticmethod
    def _fingerprint(key: bytes, secret: str) -> str:
        return hmac.new(key, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def mask_secret(secret: str) -> str:
    """``AIza…x9Q2``: enough to recognise a key, never enough to use it.

    Short secrets show less, so the visible part stays a small share of the whole.
    """
    if len(secret) >= 16:
        return f"{secret[:4]}…{secret[-4:]}"
    if len(secret) >= 10:
        return f"…{secret[-3:]}"
    return "…"
