"""The NOWPayments IPN signature: HMAC-SHA512 over the body with object keys sorted.

NOWPayments' reference code parses the notification, sorts object keys recursively and hashes
``JSON.stringify`` of the result. We rebuild that text from the parsed body with numbers kept
exactly as they came (a float round trip would change the digits) and non-ASCII text written
as is, as ``JSON.stringify`` does.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from nproxy_pay_crypto.wirejson import dumps_exact

__all__ = ["SIGNATURE_HEADER", "canonical_text", "ipn_signature", "signature_matches"]

SIGNATURE_HEADER = "x-nowpayments-sig"


def canonical_text(payload: Any, *, ensure_ascii: bool = False) -> str:
    """The text NOWPayments signs: keys sorted recursively, no whitespace, exact numbers."""
    return dumps_exact(payload, sort_keys=True, ensure_ascii=ensure_ascii)


def ipn_signature(payload: Any, secret: str, *, ensure_ascii: bool = False) -> str:
    """Hex HMAC-SHA512 of the canonical text, keyed with the IPN secret."""
    message = canonical_text(payload, ensure_ascii=ensure_ascii).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha512).hexdigest()


def signature_matches(payload: Any, secret: str, signature: str) -> bool:
    """Whether ``signature`` signs ``payload``, compared in constant time.

    The ``JSON.stringify`` form (non-ASCII as is) is the primary one. NOWPayments' own Python
    and PHP samples escape non-ASCII as ``\\uXXXX`` instead, so when the payload holds
    non-ASCII text that form is accepted too. Both are deterministic encodings of the same
    parsed payload, so accepting either cannot let a different payload through.
    """
    claimed = signature.strip().lower()
    if not claimed.isascii():
        return False
    claimed_bytes = claimed.encode("ascii")
    primary = ipn_signature(payload, secret)
    if hmac.compare_digest(primary.encode("ascii"), claimed_bytes):
        return True
    escaped = ipn_signature(payload, secret, ensure_ascii=True)
    return escaped != primary and hmac.compare_digest(escaped.encode("ascii"), claimed_bytes)
