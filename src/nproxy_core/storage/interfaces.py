"""The storage service contract: where generated images and uploads are kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import NamedTuple

from zope.interface import Attribute, Interface


class StorageError(Exception):
    """The storage backend failed (unreachable, refused, misconfigured).

    The message is for logs and admins; it never carries credentials.
    """


class ObjectNotFound(StorageError):
    """No object is stored under the key."""


class InvalidKey(StorageError):
    """A key that could escape its folder or is otherwise unusable (``..``, absolute, empty)."""


class StoredObject(NamedTuple):
    key: str
    modified_at: dt.datetime


class ObjectBytes(NamedTuple):
    data: bytes
    content_type: str


class IStorage(Interface):
    """Object storage for image bytes, keyed by paths such as ``uploads/7/<uuid>.png``.

    Keys come from :func:`nproxy_core.storage.generation_key` and
    :func:`nproxy_core.storage.upload_key`; objects are written once and never changed.
    """

    media_origin = Attribute(
        "str | None: the origin (scheme://host[:port]) browsers fetch media from when "
        "url_for redirects there; None when the app serves the bytes itself"
    )

    def put(key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing any object there; all or nothing."""

    def get(key: str) -> bytes:
        """The stored bytes; raises :class:`ObjectNotFound` when there is none."""

    def read(key: str) -> ObjectBytes:
        """The stored bytes with their content type (for backups, which must put an object back
        as it was); raises :class:`ObjectNotFound` when there is none."""

    def delete(key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    def exists(key: str) -> bool:
        """Whether an object is stored under ``key``."""

    def list_keys(prefix: str) -> Iterator[StoredObject]:
        """Every object whose key starts with ``prefix`` (for sweeping orphans), in no
        particular order."""

    def url_for(key: str, expires_in: int | None = None) -> str | None:
        """A short-lived URL a browser can fetch the object from, or None when the app must
        serve the bytes itself (the local backend). ``expires_in`` defaults to the backend's
        setting."""
