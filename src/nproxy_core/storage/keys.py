"""The layout of object keys (DESIGN 4.6), and the one check every backend applies to a key."""

from __future__ import annotations

import re
import uuid

from nproxy_core.storage.interfaces import InvalidKey

_EXTENSION = re.compile(r"[a-z0-9]{1,8}")
# Conservative on purpose: the same key must be a safe file path and a plain S3 key.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def _extension(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if not _EXTENSION.fullmatch(ext):
        raise InvalidKey(f"unusable file extension {ext!r}")
    return ext


def generation_key(user_id: int, generation_id: uuid.UUID | int | str, n: int, ext: str) -> str:
    """``generations/{user_id}/{generation_id}/{n}.{ext}``: image ``n`` of a generation."""
    return validate_key(f"generations/{int(user_id)}/{generation_id}/{int(n)}.{_extension(ext)}")


def upload_key(user_id: int, upload_id: uuid.UUID | str, ext: str) -> str:
    """``uploads/{user_id}/{upload_id}.{ext}``: a user's uploaded input image."""
    return validate_key(f"uploads/{int(user_id)}/{upload_id}.{_extension(ext)}")


def validate_key(key: str) -> str:
    """Return ``key`` if every segment is a plain name; raise :class:`InvalidKey` otherwise.

    This refuses absolute paths, ``..`` and ``.`` segments, empty segments, backslashes and
    control characters, so a key can never point outside the storage folder or bucket prefix.
    """
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidKey("the storage key is empty or too long")
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            raise InvalidKey(f"unsafe storage key {key!r}")
    return key
