"""Choosing a key for an image: round robin over a provider's eligible keys, from a cursor row
shared by every process, skipping the keys already tried for this image."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa

from nproxy_core.keypool.connections import RouterConnections
from nproxy_core.keypool.rules import KEYS, K
from nproxy_core.keypool.statements import (
    BUMP_CURSOR,
    CANDIDATE,
    CLAIM,
    CLAIM_IN_ONE,
    CURSORS,
    NEW_CURSOR,
    PROXY_URL,
    SET_CURSOR,
    insert_ignore,
)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A key taken for one image: what its calls need, and what their outcomes refer to."""

    provider: str
    key_id: int
    token: str
    proxy_id: int | None
    proxy_url: str | None
    billing_group: str | None
    #: The provider-side project of the key (None: the key is its own).
    project: str | None
    version: int
    picked_at: dt.datetime


def choose_key(
    connections: RouterConnections, provider: str, tried: list[int], now: dt.datetime
) -> Claim | None:
    """Claim the next eligible key of ``provider`` not in ``tried``; None when there is none."""
    if connections.one_statement:
        return _choose_in_one(connections, provider, tried, now)
    with connections.transaction() as conn:
        params = {
            "b_provider": provider,
            "b_now": now,
            "b_skip": list(tried),
            "b_last": _lock_cursor(conn, provider),
        }
        while True:
            row = conn.execute(CLAIM, params).first()
            if row is not None:
                key_id = row.id
                break
            # Nothing eligible, or the chosen key was taken out of service just now (the next
            # statement sees that and chooses another).
            if conn.scalar(CANDIDATE, params) is None:
                return None
        conn.execute(SET_CURSOR, {"b_provider": provider, "b_key_id": key_id})
        return _claim_of(conn, provider, key_id, row, now)


def claim_key(connections: RouterConnections, key_id: int, now: dt.datetime) -> Claim | None:
    """Claim one key by id whatever its state (an admin's test); None for an unknown key."""
    with connections.transaction() as conn:
        row = conn.execute(
            sa.update(KEYS)
            .where(K.id == key_id)
            .values(version=K.version + 1)
            .returning(
                K.provider, K.secret_encrypted, K.proxy_id, K.billing_group, K.project, K.version
            )
        ).first()
        if row is None:
            return None
        return _claim_of(conn, row.provider, key_id, row, now)


def _claim_of(conn: sa.Connection, provider: str, key_id: int, row: Any, now: dt.datetime) -> Claim:
    """The claim of a key row just taken, with its proxy's URL if the proxy is enabled."""
    proxy_url = None
    if row.proxy_id is not None:
        proxy_url = conn.scalar(PROXY_URL, {"b_proxy_id": row.proxy_id})
    return Claim(
        provider=provider,
        key_id=key_id,
        token=row.secret_encrypted,
        proxy_id=row.proxy_id if proxy_url is not None else None,
        proxy_url=proxy_url,
        billing_group=row.billing_group,
        project=row.project,
        version=row.version,
        picked_at=now,
    )


def _lock_cursor(conn: sa.Connection, provider: str) -> int:
    """Take the provider's cursor row for this transaction; returns the last key id."""
    row = conn.execute(BUMP_CURSOR, {"b_provider": provider}).first()
    if row is None:
        conn.execute(insert_ignore(conn, CURSORS, provider=provider, turns=0))
        row = conn.execute(BUMP_CURSOR, {"b_provider": provider}).one()
    return row.last_key_id or 0


def _choose_in_one(
    connections: RouterConnections, provider: str, tried: list[int], now: dt.datetime
) -> Claim | None:
    """PostgreSQL: :func:`choose_key` as one statement (``CLAIM_IN_ONE``) per try."""
    params = {"b_provider": provider, "b_now": now, "b_skip": list(tried)}
    while True:
        row = connections.run(CLAIM_IN_ONE, params)
        assert row is not None  # the statement always returns one row
        if row.id is not None:
            break
        if not row.has_cursor:
            # The provider's first choice: make its cursor row, then choose under it.
            connections.run(NEW_CURSOR, {"b_provider": provider})
            continue
        # Nothing eligible, or the chosen key was taken out of service just now (the next try
        # sees that and chooses another).
        if row.candidate is None:
            return None
    return Claim(
        provider=provider,
        key_id=row.id,
        token=row.secret_encrypted,
        proxy_id=row.proxy_id if row.proxy_url is not None else None,
        proxy_url=row.proxy_url,
        billing_group=row.billing_group,
        project=row.project,
        version=row.version,
        picked_at=now,
    )
