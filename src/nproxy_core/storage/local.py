"""The local-folder storage backend of the embedded default: one file per key under a root."""

from __future__ import annotations

import contextlib
import datetime as dt
import mimetypes
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from zope.interface import implementer

from nproxy_core.storage.interfaces import (
    InvalidKey,
    IStorage,
    ObjectBytes,
    ObjectNotFound,
    StorageError,
    StoredObject,
)
from nproxy_core.storage.keys import validate_key


@implementer(IStorage)
class LocalStorage:
    """Files under ``root``; the app serves them itself (``url_for`` answers None)."""

    media_origin = None

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"<LocalStorage {self.root}>"

    def path_for(self, key: str) -> Path:
        """The file of ``key``, guaranteed to lie under the root."""
        path = self.root.joinpath(*validate_key(key).split("/"))
        # validate_key already refuses "..", but a symlink planted inside the root could still
        # lead out of it; resolving catches that too.
        if not path.resolve().is_relative_to(self.root):
            raise InvalidKey(f"storage key {key!r} leads outside the storage folder")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path_for(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write a temporary file in the same folder, then rename it over the target: a
            # reader sees either the old object or the whole new one, never a partial file.
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        except OSError as exc:
            raise StorageError(f"cannot write {key!r}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise StorageError(f"cannot write {key!r}: {exc.strerror}") from exc
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise

    def get(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"no object stored under {key!r}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {key!r}: {exc.strerror}") from exc

    def read(self, key: str) -> ObjectBytes:
        # A file keeps no content type; the key's extension says it (keys are made with one).
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return ObjectBytes(self.get(key), content_type)

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r}: {exc.strerror}") from exc

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def list_keys(self, prefix: str) -> Iterator[StoredObject]:
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(folder, name)
                key = path.relative_to(self.root).as_posix()
                # Half-written temporary files are not objects (and not valid keys).
                if not key.startswith(prefix) or name.startswith(".tmp-"):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
                    yield StoredObject(key, modified)

    def url_for(self, key: str, expires_in: int | None = None) -> str | None:
        # No URL of its own: /media/{asset_id} reads the bytes and serves them.
        self.path_for(key)
        return None
