"""Making, checking, restoring and pruning backups (DESIGN 4.11).

A backup is one folder, ``nproxy-YYYYMMDDTHHMMSSZ``, under the backups folder::

    manifest.json            version, migration heads, created_at, tables and their row counts,
                             every stored object, and the size and SHA-256 of every file
    database/<table>.copy    PostgreSQL: each table's rows in COPY's text format
    database/nproxy.sqlite3  SQLite: the whole database
    objects/<key>            every stored object (uploads, generated images), under its key

It is written as ``.nproxy-….partial`` and renamed when complete, so a folder with the final
name is always whole. The database is read first, in one snapshot; the storage is listed after
it, so every object a row of the snapshot names was stored already (objects are written before
their row commits). An object stored after the snapshot is kept too (harmless); one deleted
while the backup runs (its row was deleted after the snapshot) may be missing, and the
manifest names every such key under ``storage.missing``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nproxy_core.backup import database
from nproxy_core.backup.files import BackupFiles, inside, sha256_of

log = logging.getLogger(__name__)

FORMAT = "nproxy-backup/1"
MANIFEST = "manifest.json"
PREFIX = "nproxy-"
PARTIAL = ".partial"
#: A partial folder older than this is the leftover of a crash; younger ones may be in progress.
STALE_PARTIAL = dt.timedelta(days=1)


class BackupError(Exception):
    """A backup cannot be made, checked or restored; the message is one line for the operator."""


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def created_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.manifest["created_at"])

    @property
    def rows(self) -> int:
        return sum(t["rows"] for t in self.manifest["database"]["tables"].values())

    @property
    def size(self) -> int:
        return sum(f["size"] for f in self.manifest["files"].values())


def nproxy_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nproxy")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "unknown"


def secret_fingerprint(secret: str) -> str:
    """Names the secret a backup's provider keys are encrypted with, without revealing it."""
    return hmac.new(secret.encode(), b"nproxy backup secret", hashlib.sha256).hexdigest()[:16]


def knows_secret(settings: Mapping[str, Any], backup: Backup) -> bool:
    """Whether this configuration holds the secret the backup was made with (as NPROXY_SECRET
    or in NPROXY_SECRET_PREVIOUS): without it, the restored provider keys cannot be decrypted
    and every session is signed with another key."""
    from nproxy_core.config import server_secrets

    wanted = backup.manifest.get("secret_fingerprint")
    return wanted is None or any(
        hmac.compare_digest(secret_fingerprint(secret), wanted)
        for secret in server_secrets(settings)
    )


# --- create ------------------------------------------------------------------------------------


def _new_name(parent: Path, now: dt.datetime) -> str:
    base = f"{PREFIX}{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
    name, n = base, 1
    while (parent / name).exists() or (parent / f".{name}{PARTIAL}").exists():
        n += 1
        name = f"{base}-{n}"
    return name


def create_backup(
    settings: Mapping[str, Any],
    parent: Path,
    *,
    snapshot: str | None = None,
    now: dt.datetime | None = None,
) -> Backup:
    """Write a new backup under ``parent`` and return it."""
    from nproxy_core.storage import InvalidKey, ObjectNotFound, StorageError, make_storage

    now = now or dt.datetime.now(dt.UTC)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        name = _new_name(parent, now)
        work = parent / f".{name}{PARTIAL}"
        work.mkdir()
    except OSError as exc:
        raise BackupError(f"cannot write into {parent}: {exc.strerror}") from None
    try:
        files = BackupFiles(work)
        try:
            dumped = database.dump(settings["sqlalchemy.url"], files, snapshot)
        except database.DatabaseError as exc:
            raise BackupError(str(exc)) from None
        storage = make_storage(settings)
        objects: dict[str, Any] = {}
        for item in storage.list_keys(""):
            try:
                stored = storage.read(item.key)
            except ObjectNotFound:
                continue  # deleted since it was listed
            except InvalidKey:
                log.warning("skipped a file in storage that is not an object: %r", item.key)
                continue
            relative = f"objects/{item.key}"
            files.write_bytes(relative, stored.data)
            objects[item.key] = {"file": relative, "content_type": stored.content_type}
        manifest = {
            "format": FORMAT,
            "nproxy_version": nproxy_version(),
            "secret_fingerprint": secret_fingerprint(settings["nproxy.secret"]),
            "created_at": now.astimezone(dt.UTC).isoformat(),
            "database": dumped.manifest,
            "storage": {
                "backend": settings.get("nproxy.storage", "local"),
                "objects": objects,
                "missing": sorted(dumped.storage_keys - objects.keys()),
            },
            "files": files.entries,
        }
        with (work / MANIFEST).open("x", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        final = parent / name
        os.replace(work, final)
    except StorageError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError(f"cannot read the storage: {exc}") from None
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError(f"cannot write the backup into {parent}: {exc.strerror}") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Backup(final, manifest)


# --- read and check ------------------------------------------------------------------------------


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{folder} is not a backup: it has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder}/{MANIFEST} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{folder} is not a backup this nproxy can read (format {FORMAT})")
    return manifest


def verify_backup(folder: Path) -> Backup:
    """The backup at ``folder`` if every file it lists is there with its size and checksum."""
    manifest = read_manifest(folder)
    try:
        files: dict[str, Any] = manifest["files"]
        listed = [t["file"] for t in manifest["database"]["tables"].values()]
        listed += [o["file"] for o in manifest["storage"]["objects"].values()]
        for relative in listed:
            if relative not in files:
                raise BackupError(f"backup {folder.name} is damaged: {relative} has no checksum")
        for relative, expected in sorted(files.items()):
            try:
                path = inside(folder, relative)
            except ValueError as exc:
                raise BackupError(f"backup {folder.name} is damaged: {exc}") from None
            if not path.is_file():
                raise BackupError(f"backup {folder.name} is damaged: {relative} is missing")
            if path.stat().st_size != expected["size"] or sha256_of(path) != expected["sha256"]:
                raise BackupError(
                    f"backup {folder.name} is damaged: {relative} does not match its checksum"
                )
    except (KeyError, TypeError, AttributeError) as exc:
        raise BackupError(f"backup {folder.name} has a malformed manifest ({exc})") from None
    return Backup(folder, manifest)


def list_backups(parent: Path) -> list[Backup]:
    """The complete backups under ``parent``, oldest first."""
    found = []
    if not parent.is_dir():
        return found
    for path in parent.iterdir():
        if not path.name.startswith(PREFIX) or not path.is_dir():
            continue
        try:
            found.append(Backup(path, read_manifest(path)))
        except BackupError:
            log.warning("%s has no readable manifest; left alone", path)
    return sorted(found, key=lambda b: (b.created_at, b.name))


def prune_backups(parent: Path, keep: int, *, now: dt.datetime | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` backups (and a crash's old partial folders)."""
    if keep < 1:
        raise ValueError("keep at least one backup")
    now = now or dt.datetime.now(dt.UTC)
    doomed = [b.path for b in list_backups(parent)[:-keep]]
    for path in parent.glob(f".{PREFIX}*{PARTIAL}"):
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        if now - modified > STALE_PARTIAL:
            doomed.append(path)
    for path in doomed:
        shutil.rmtree(path)
    return doomed


# --- restore -------------------------------------------------------------------------------------


def _refuse_unknown_revisions(settings: Mapping[str, Any], backup: Backup) -> set[str]:
    """Every revision at or before the backup's heads, or BackupError if this code lacks one."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from nproxy_core.migrations import alembic_config

    heads = backup.manifest["database"]["migration_heads"]
    script = ScriptDirectory.from_config(alembic_config(dict(settings)))
    try:
        for head in heads:
            script.get_revision(head)
        return {rev.revision for rev in script.iterate_revisions(heads, "base")}
    except CommandError:
        raise BackupError(
            f"backup {backup.name} has schema revision {', '.join(heads)}, unknown to nproxy "
            f"{nproxy_version()}: restore it with nproxy {backup.manifest['nproxy_version']} "
            "or newer"
        ) from None


def restore_backup(settings: Mapping[str, Any], folder: Path) -> Backup:
    """Put the backup at ``folder`` into the configured database and storage, which must be
    empty. Every check runs before anything changes; a refusal raises BackupError."""
    from nproxy_core.migrations import SchemaError, upgrade
    from nproxy_core.storage import StorageError, make_storage

    backup = verify_backup(folder)
    url = settings["sqlalchemy.url"]
    section = backup.manifest["database"]
    if database.backend(url) != section["dialect"]:
        raise BackupError(
            f"backup {backup.name} is of a {section['dialect']} database; "
            f"this one is {database.backend(url)}"
        )
    known = _refuse_unknown_revisions(settings, backup)
    try:
        target = database.state(url)
    except database.DatabaseError as exc:
        raise BackupError(str(exc)) from None
    if target.tables:
        # An empty schema is accepted too: one that `nproxy db upgrade` made (compose runs it
        # on start) or a failed restore left, at or before the backup's revision.
        if not target.heads:
            raise BackupError("the database is not empty: it has tables but no nproxy schema")
        if not set(target.heads) <= known:
            raise BackupError(
                f"the database is not empty: its schema is at {', '.join(target.heads)}, "
                f"past the backup's {', '.join(section['migration_heads'])} "
                "(restore into a database made anew)"
            )
        if target.table_with_rows:
            raise BackupError(f"the database is not empty: table {target.table_with_rows} has rows")
    storage = make_storage(settings)
    try:
        first = next(iter(storage.list_keys("")), None)
    except StorageError as exc:
        raise BackupError(f"cannot read the storage: {exc}") from None
    if first is not None:
        raise BackupError(f"the storage is not empty: it holds {first.key}")

    # Checked: from here on, things change.
    try:
        if section["dialect"] == "postgresql":
            for head in section["migration_heads"]:
                upgrade(dict(settings), head)
        for key, entry in backup.manifest["storage"]["objects"].items():
            data = inside(folder, entry["file"]).read_bytes()
            storage.put(key, data, entry["content_type"])
        database.load(url, folder, section)
    except (database.DatabaseError, SchemaError, StorageError) as exc:
        raise BackupError(
            f"the restore stopped half-way ({exc}): empty the database and the storage again, "
            "then run it again"
        ) from None
    return backup
