"""The statements the router runs to choose a key and to log an attempt, built once with bound
parameters; on PostgreSQL, each step of the hot path folded into one statement.

Choosing a key is one short transaction that first updates the provider's cursor row (a row
lock on PostgreSQL, the write lock on SQLite), so choices are serialised per provider; the key
is then claimed with a conditional UPDATE that re-checks eligibility. Run one by one in a
transaction, these cost a round trip each plus BEGIN and COMMIT. On PostgreSQL the same steps
are folded into one data-modifying statement each (a choice: :data:`CLAIM_IN_ONE`; a success or
retryable outcome with its attempt: :data:`LOGGED`), run in autocommit, so each costs one round
trip. SQLite (the embedded default) keeps the portable path.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from nproxy_core.keypool.models import KeyAttempt, KeyCursor, ProxyState
from nproxy_core.keypool.rules import (
    ELIGIBLE,
    FAILED,
    KEYS,
    NOW,
    PROJECT_RATE_LIMITED,
    PROXIES,
    SUCCEEDED,
    K,
)

CURSORS = KeyCursor.__table__
ATTEMPTS = KeyAttempt.__table__

# --- the portable path: one statement at a time, in a transaction ----------------------------

BUMP_CURSOR = (
    sa.update(CURSORS)
    .where(CURSORS.c.provider == sa.bindparam("b_provider"))
    .values(turns=CURSORS.c.turns + 1)
    .returning(CURSORS.c.last_key_id)
)
SET_CURSOR = (
    sa.update(CURSORS)
    .where(CURSORS.c.provider == sa.bindparam("b_provider"))
    .values(last_key_id=sa.bindparam("b_key_id"))
)


def _candidate_after(last_key_id: Any) -> sa.Select[Any]:
    """The first eligible key after ``last_key_id``, else wrap around to the lowest id."""
    return (
        sa.select(K.id)
        .where(
            K.provider == sa.bindparam("b_provider"),
            ELIGIBLE,
            K.id.not_in(sa.bindparam("b_skip", expanding=True)),
        )
        .order_by(sa.case((K.id > last_key_id, 0), else_=1), K.id)
        .limit(1)
    )


def _claim(key_id: Any, *also: sa.ColumnElement[bool]) -> sa.Update:
    """Take key ``key_id`` for an attempt, if it is still eligible; returns what the call needs.

    Eligibility is checked again on the row itself: on PostgreSQL, if another process cooled
    the key down meanwhile (and committed), the UPDATE sees its current state and matches
    nothing.
    """
    return (
        sa.update(KEYS)
        .where(K.id == key_id, ELIGIBLE, *also)
        .values(last_used_at=NOW, version=K.version + 1)
        .returning(K.id, K.secret_encrypted, K.proxy_id, K.billing_group, K.project, K.version)
    )


CANDIDATE = _candidate_after(sa.bindparam("b_last"))
CLAIM = _claim(CANDIDATE.scalar_subquery())
PROXY_URL = sa.select(PROXIES.c.url).where(
    PROXIES.c.id == sa.bindparam("b_proxy_id"), PROXIES.c.state == ProxyState.ACTIVE
)
RECORD = ATTEMPTS.insert()


def insert_ignore(conn: sa.Connection, table: sa.Table, **values: Any) -> sa.Executable:
    """INSERT that does nothing when the row exists (another process made it first)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - nproxy runs on PostgreSQL and SQLite
        raise RuntimeError(f"unsupported database {dialect!r}")
    return insert(table).values(**values).on_conflict_do_nothing()


# --- PostgreSQL: each step of the hot path as one statement ----------------------------------

_ONE_ROW = sa.select(sa.literal(1).label("one")).subquery("one")

# Taken first, as in the portable path: FOR UPDATE waits for a concurrent choice to commit and
# then reads the cursor it left, so choices stay serialised per provider.
_CURSOR_ROW = (
    sa.select(CURSORS.c.last_key_id)
    .where(CURSORS.c.provider == sa.bindparam("b_provider"))
    .with_for_update()
    .cte("cursor_row")
)
_PICK = _candidate_after(
    sa.func.coalesce(sa.select(_CURSOR_ROW.c.last_key_id).scalar_subquery(), 0)
).cte("pick")
# The statement reads keys as of its start; if another process changed the picked key since
# (and committed), PostgreSQL re-checks the claim's WHERE on the key's current row.
_CLAIMED = _claim(sa.select(_PICK.c.id).scalar_subquery(), sa.exists(_CURSOR_ROW.select())).cte(
    "claimed"
)
_CURSOR_MOVED = (
    sa.update(CURSORS)
    .where(CURSORS.c.provider == sa.bindparam("b_provider"))
    .values(
        turns=CURSORS.c.turns + 1,
        last_key_id=sa.func.coalesce(
            sa.select(_CLAIMED.c.id).scalar_subquery(), CURSORS.c.last_key_id
        ),
    )
    .cte("cursor_moved")
)
CLAIM_IN_ONE = (
    sa.select(
        sa.exists(_CURSOR_ROW.select()).label("has_cursor"),
        sa.select(_PICK.c.id).scalar_subquery().label("candidate"),
        _CLAIMED.c.id,
        _CLAIMED.c.secret_encrypted,
        _CLAIMED.c.proxy_id,
        _CLAIMED.c.billing_group,
        _CLAIMED.c.project,
        _CLAIMED.c.version,
        PROXIES.c.url.label("proxy_url"),
        # Only bookkeeping is written here (cursor, last use, row version), so waiting for the
        # disk is not needed: a crash loses at most a cursor step, and the next durable commit
        # (a failure's outcome, the job's finish) flushes this one first anyway. (SET LOCAL
        # for this statement's implicit transaction.)
        sa.func.set_config("synchronous_commit", "off", sa.true()).label("no_flush"),
    )
    .select_from(
        _ONE_ROW.outerjoin(_CLAIMED, sa.true()).outerjoin(
            PROXIES,
            sa.and_(PROXIES.c.id == _CLAIMED.c.proxy_id, PROXIES.c.state == ProxyState.ACTIVE),
        )
    )
    .add_cte(_CURSOR_MOVED)
)
NEW_CURSOR = (
    postgresql.insert(CURSORS)
    .values(provider=sa.bindparam("b_provider"), turns=0)
    .on_conflict_do_nothing()
    .returning(CURSORS.c.provider)
)


def _with_attempt(
    key_update: sa.Update, *, sets_cooldown: bool, flushed: bool = True
) -> sa.Select[Any]:
    """``key_update`` (with RETURNING) and the attempt's row as one statement.

    The attempt's values are the ``a_<column>`` parameters, except its outcome version (and,
    with ``sets_cooldown``, its cooldown deadline), which come from the updated key row. The
    attempt is written even when the update matched nothing. Returns the called key's row (a
    rate limit's update also changes the rest of its project). Without ``flushed`` its commit
    does not wait for the disk (see :data:`SUCCEEDED_LOGGED`).
    """
    changed = key_update.cte("changed_key")
    row = _ONE_ROW.outerjoin(changed, changed.c.id == sa.bindparam("b_key_id"))
    values: dict[str, Any] = {
        c.name: sa.bindparam(f"a_{c.name}", type_=c.type)
        for c in ATTEMPTS.c
        if c.name not in ("id", "outcome_version", "cooldown_until")
    }
    values["outcome_version"] = changed.c.version
    values["cooldown_until"] = changed.c.cooldown_until if sets_cooldown else sa.null()
    logged = ATTEMPTS.insert().from_select(
        list(values), sa.select(*values.values()).select_from(row)
    )
    columns: list[Any] = [changed]
    if not flushed:
        columns.append(sa.func.set_config("synchronous_commit", "off", sa.true()).label("no_flush"))
    return sa.select(*columns).select_from(row).add_cte(logged.cte("logged"))


#: A success does not wait for the disk: the image it made is then stored and its job finished
#: in a transaction that does (the finish), and PostgreSQL writes the log in order, so that
#: commit makes this one durable too. A crash in between loses the attempt's row and the key's
#: spend for an image that is made again (its job runs again). Failures keep waiting: a key's
#: cooldown or review must survive a crash.
SUCCEEDED_LOGGED = _with_attempt(SUCCEEDED, sets_cooldown=False, flushed=False)
FAILED_LOGGED = _with_attempt(FAILED, sets_cooldown=True)
PROJECT_RATE_LIMITED_LOGGED = _with_attempt(PROJECT_RATE_LIMITED, sets_cooldown=True)

#: The one-statement form of each key update of an outcome.
LOGGED = {
    SUCCEEDED: SUCCEEDED_LOGGED,
    FAILED: FAILED_LOGGED,
    PROJECT_RATE_LIMITED: PROJECT_RATE_LIMITED_LOGGED,
}
