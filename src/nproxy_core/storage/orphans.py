"""Sweeping orphaned objects: stored bytes whose row never committed, or whose row was deleted
while removing the object failed (a crash, storage briefly down).

Each feature that stores objects declares which model owns the keys under a prefix
(``config.add_stored_objects(Upload, prefix="uploads/")``). The sweep lists each prefix and
deletes objects older than a grace period that no row names; the grace period leaves alone an
object whose row is still on its way (an upload being committed, a job still running).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

import sqlalchemy as sa
from pyramid.request import Request
from sqlalchemy.orm import Session

from nproxy_core.db import utcnow
from nproxy_core.storage.interfaces import IStorage, StorageError

log = logging.getLogger(__name__)

REGISTRY_KEY = "nproxy.stored_objects"
#: Objects younger than this are never swept: their rows may not have committed yet.
GRACE = dt.timedelta(days=1)
BATCH = 500


class StoredObjects(NamedTuple):
    prefix: str
    model: Any
    #: The column of ``model`` naming the keys (``storage_key``, or e.g. ``thumb_key``).
    column: str = "storage_key"


def add_stored_objects(config: Any, model: Any, prefix: str, column: str = "storage_key") -> None:
    """Directive: the rows of ``model`` (with a ``column`` naming stored keys, by default
    ``storage_key``) own the keys under ``prefix``; any other object there is an orphan."""
    model = config.maybe_dotted(model)

    def register() -> None:
        config.registry.setdefault(REGISTRY_KEY, []).append(StoredObjects(prefix, model, column))

    config.action(("nproxy.stored_objects", prefix), register)


def _batches(keys: Iterator[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def sweep_orphans(request: Request, *, now: dt.datetime | None = None) -> int:
    """Delete objects older than the grace period that no row names; how many were deleted."""
    db: Session = request.db
    storage = request.find_service(IStorage)
    cutoff = (now or utcnow()) - GRACE
    deleted = 0
    for owner in request.registry.get(REGISTRY_KEY, ()):
        old = (item.key for item in storage.list_keys(owner.prefix) if item.modified_at < cutoff)
        for batch in _batches(old):
            column = getattr(owner.model, owner.column)
            known = set(db.scalars(sa.select(column).where(column.in_(batch))))
            for key in batch:
                if key in known:
                    continue
                try:
                    storage.delete(key)
                except StorageError:
                    log.exception("could not delete the orphaned object %s", key)
                    continue
                deleted += 1
    if deleted:
        log.info("deleted %d orphaned objects", deleted)
    return deleted


def delete_after_commit(request: Request, keys: list[str]) -> None:
    """Delete the objects of ``keys`` once the transaction that deleted their rows commits.

    A deletion that fails leaves an orphan for :func:`sweep_orphans`; an abort deletes nothing.
    """
    storage = request.find_service(IStorage)

    def delete(committed: bool) -> None:
        if not committed:
            return
        for key in keys:
            try:
                storage.delete(key)
            except Exception:
                log.exception("could not delete object %s; the orphan sweep will", key)

    request.tm.get().addAfterCommitHook(delete)
