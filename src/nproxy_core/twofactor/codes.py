"""The rules of two-factor codes as plain functions: TOTP (RFC 6238) with one step of clock
drift, the QR code an authenticator app scans, and recovery codes.

Nothing here touches the database: :mod:`.services` stores what these functions decide.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

import pyotp
import segno
from markupsafe import escape
from pyotp.exceptions import OTPVerificationError

#: Steps of clock drift accepted either side of now (30 s each): a phone a little fast or slow,
#: or a code typed just as it changed. Two steps away is refused.
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10

# Crockford's base32: no I, L, O or U, so a code read off paper is typed right; 16 of them
# are 80 random bits, shown as four groups of four.
_RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_RECOVERY_LENGTH = 16
_RECOVERY_SHAPE = re.compile(f"[{_RECOVERY_ALPHABET}]{{{_RECOVERY_LENGTH}}}")
_READ_AS = str.maketrans({"i": "1", "l": "1", "o": "0", "u": "v"})
_TOTP_SHAPE = re.compile(r"[0-9]{6}")
#: Longer input is neither kind of code: refused before any work is done on it.
MAX_CODE_LENGTH = 64


def new_secret() -> str:
    """A fresh TOTP secret: 160 random bits in base32, as RFC 4226 recommends."""
    return pyotp.random_base32(32)


def grouped(secret: str) -> str:
    """``ABCD EFGH …``: the secret as a person types it into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str, label: str = "QR code to scan with your authenticator app") -> str:
    """The QR code of ``uri`` as an inline SVG element, drawn here (no image service sees the
    secret), named ``label`` for screen readers. Dark modules on a white quiet zone, which
    every phone camera reads in either theme; its size in attributes (the CSP allows no inline
    style)."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=5, border=4, dark="#000", light="#fff", svgclass="qr"
    )
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)


def time_step(now: dt.datetime) -> int:
    """The RFC 6238 time step of ``now`` (30-second intervals since the epoch)."""
    return int(now.timestamp()) // 30


def matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step whose code ``code`` is, within :data:`VALID_WINDOW` of ``now``; None when
    it is none of them. Whether that step may still be used is the caller's to decide."""
    if not _TOTP_SHAPE.fullmatch(code):
        return None
    try:
        return pyotp.TOTP(secret).verify_and_get_timecode(
            code, for_time=now, valid_window=VALID_WINDOW
        )
    except OTPVerificationError:
        return None


def code_at(secret: str, moment: dt.datetime) -> str:
    """The code an authenticator app shows at ``moment`` (tests and the enrolment check)."""
    return pyotp.TOTP(secret).at(moment)


def clean_code(value: object) -> str | None:
    """What a person typed, as the code it means: spaces and dashes dropped, lower case, the
    letters Crockford's base32 reads as digits mapped; None for anything that cannot be a code
    (not text, too long, a NUL)."""
    if not isinstance(value, str) or len(value) > MAX_CODE_LENGTH:
        return None
    cleaned = re.sub(r"[\s-]", "", value).lower()
    return cleaned or None


def is_totp_code(code: str) -> bool:
    return bool(_TOTP_SHAPE.fullmatch(code))


def recovery_code_key(code: str) -> str | None:
    """The canonical form of a recovery code (the one hashed), or None if ``code`` cannot be
    one."""
    key = code.translate(_READ_AS)
    return key if _RECOVERY_SHAPE.fullmatch(key) else None


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Fresh recovery codes as shown to the person: ``k3f9-2mxa-7qpe-d0wn``."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)))
    return codes


def recovery_code_hash(key: str) -> str:
    """What is stored of a recovery code (its canonical form, :func:`recovery_code_key`)."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


__all__ = [
    "RECOVERY_CODE_COUNT",
    "VALID_WINDOW",
    "clean_code",
    "code_at",
    "grouped",
    "is_totp_code",
    "matching_step",
    "new_recovery_codes",
    "new_secret",
    "provisioning_uri",
    "qr_svg",
    "recovery_code_hash",
    "recovery_code_key",
    "time_step",
]
