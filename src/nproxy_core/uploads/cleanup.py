"""Uploads nobody used: an upload that no generation took within a day is deleted, its row in
one transaction and its object after that commits (a failed object deletion is swept later)."""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from pyramid.request import Request

from nproxy_core.db import utcnow
from nproxy_core.storage import delete_after_commit
from nproxy_core.uploads.models import Upload

log = logging.getLogger(__name__)

#: How long an upload may wait for a generation to use it.
UNUSED_LIFETIME = dt.timedelta(days=1)
BATCH = 500


def delete_unused_uploads(request: Request, *, now: dt.datetime | None = None) -> int:
    """Delete up to one batch of uploads older than a day that no generation used.

    Rows another transaction holds (a submission taking the upload right now) are skipped;
    the submission locks the rows it uses, so an upload is never deleted under a generation.
    """
    cutoff = (now or utcnow()) - UNUSED_LIFETIME
    rows = request.db.scalars(
        sa.select(Upload)
        .where(Upload.used_at.is_(None), Upload.created_at < cutoff)
        .order_by(Upload.created_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return 0
    keys = [row.storage_key for row in rows]
    request.db.execute(sa.delete(Upload).where(Upload.id.in_([row.id for row in rows])))
    delete_after_commit(request, keys)
    log.info("deleting %d uploads no generation used within a day", len(rows))
    return len(rows)
