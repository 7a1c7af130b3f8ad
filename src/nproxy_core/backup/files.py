"""The files of a backup folder, each with the size and SHA-256 the manifest records for it."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def inside(root: Path, relative: str) -> Path:
    """``root / relative`` for a plain relative path; ValueError for one that could leave root
    (a manifest is read before it is trusted)."""
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unusable file name {relative!r}")
    return root.joinpath(*parts)


class _HashingWriter:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> None:
        self._handle.write(data)
        self.digest.update(data)
        self.size += len(data)


class BackupFiles:
    """Writes files under a backup folder and remembers what the manifest says of each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: dict[str, dict[str, Any]] = {}

    @contextlib.contextmanager
    def open(self, relative: str) -> Iterator[_HashingWriter]:
        path = inside(self.root, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as handle:
            writer = _HashingWriter(handle)
            yield writer
            handle.flush()
            # A backup is read back after a disaster: its bytes must be on disk, not in a cache.
            os.fsync(handle.fileno())
        self.entries[relative] = {"size": writer.size, "sha256": writer.digest.hexdigest()}

    def write_bytes(self, relative: str, data: bytes) -> None:
        with self.open(relative) as handle:
            handle.write(data)

    def record(self, relative: str) -> None:
        """A file that something else wrote (SQLite's backup API)."""
        path = inside(self.root, relative)
        self.entries[relative] = {"size": path.stat().st_size, "sha256": sha256_of(path)}
