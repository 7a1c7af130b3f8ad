"""Provider key secrets at rest: Fernet with a key derived from ``nproxy.secret`` (HKDF)."""

from __future__ import annotations

import base64
import hashlib
import hmac

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
    """A stored secret cannot be decrypted (``nproxy.secret`` changed, or the row is damaged)."""


def _derive(master: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        master.encode("utf-8")
    )


@implementer(ISecretBox)
class SecretBox:
    """Encrypts, decrypts and fingerprints provider key secrets."""

    def __init__(self, master_secret: str) -> None:
        if not master_secret:
            raise ValueError("nproxy.secret is empty")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(master_secret, _ENCRYPTION_INFO)))
        self._fingerprint_key = _derive(master_secret, _FINGERPRINT_INFO)

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as exc:
            raise SecretUnreadable("the stored key cannot be decrypted with nproxy.secret") from exc

    def fingerprint(self, secret: str) -> str:
        return hmac.new(self._fingerprint_key, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def mask_secret(secret: str) -> str:
    """``AIza…x9Q2``: enough to recognise a key, never enough to use it.

    Short secrets show less, so the visible part stays a small share of the whole.
    """
    if len(secret) >= 16:
        return f"{secret[:4]}…{secret[-4:]}"
    if len(secret) >= 10:
        return f"…{secret[-3:]}"
    return "…"
