"""Server-side sessions: a row per logged-in browser, ended by logging out (here or everywhere)
and by a password change or reset; and the addresses an account is known to use."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from nproxy_core.accounts.models import User, UserSession
from nproxy_core.db import utcnow

#: last_seen_at is written at most this often per session: a poll every second writes nothing.
TOUCH_INTERVAL = dt.timedelta(minutes=5)
#: How long an ended or idle session's row is kept, and so how long an address stays familiar.
RETENTION = dt.timedelta(days=90)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def start_session(db: Session, user: User, *, ip: str, user_agent: str) -> str:
    """Record a new session of ``user``; returns the token for the cookie (never stored)."""
    token = secrets.token_urlsafe(32)
    db.add(
        UserSession(
            user_id=user.id,
            token_hash=token_hash(token),
            ip=ip[:45],
            user_agent=user_agent[:200],
        )
    )
    db.flush()
    return token


_SESSIONS = UserSession.__table__
_USERS = User.__table__


def _session_check(*columns: Any) -> sa.Select[Any]:
    return (
        sa.select(
            _SESSIONS.c.id.label("session_id"),
            _SESSIONS.c.last_seen_at.label("session_last_seen_at"),
            *columns,
        )
        .join_from(_SESSIONS, _USERS, _USERS.c.id == _SESSIONS.c.user_id)
        .where(
            _SESSIONS.c.token_hash == sa.bindparam("b_token_hash"),
            _SESSIONS.c.ended_at.is_(None),
        )
    )


#: The session check: the live session of a token hash with its user's row, one Core select
#: built once (loading the two ORM objects cost more than the rest of a poll). The user's
#: columns keep their own names, so the ORM user can be made from the row without a query
#: (:func:`user_of`). A route may add columns of its own (:func:`check_session`'s
#: ``statement``) to learn what it needs in the same round trip.
SESSION_CHECK = _session_check(*_USERS.c)
#: The same with only the user's columns that decide the check: for a route that needs no
#: more of its user than the id (each column is work in every request).
QUICK_SESSION_CHECK = _session_check(
    _USERS.c.id, _USERS.c.is_blocked, _USERS.c.session_version, _USERS.c.role
)
#: ORM-enabled (on the entity, not the table) so that the request's transaction knows it wrote.
_TOUCH = (
    sa.update(UserSession)
    .where(UserSession.id == sa.bindparam("b_session_id"))
    .values(last_seen_at=sa.bindparam("b_now"))
    .execution_options(synchronize_session=False)
)


def check_session(
    db: Session,
    token: str,
    *,
    idle_limit: dt.timedelta,
    touch: bool = True,
    statement: sa.Select = SESSION_CHECK,
    params: dict[str, Any] | None = None,
) -> sa.Row[Any] | None:
    """The live session of ``token`` as a row of :data:`SESSION_CHECK` (or of ``statement``,
    which extends it), in one round trip; None if it ended or sat idle too long.

    With ``touch``, a session last seen more than :data:`TOUCH_INTERVAL` ago is marked seen now,
    in the caller's transaction (a read-only route passes False: it cannot write)."""
    values = {"b_token_hash": token_hash(token), **(params or {})}
    if touch:
        found = db.execute(statement, values).first()
    else:
        # Nothing to write: the statement runs on a connection of the session's engine, past
        # the session's own machinery (which costs more CPU than the rest of a poll's check).
        bind = db.get_bind()
        if isinstance(bind, sa.Connection):
            found = bind.execute(statement, values).first()
        else:
            with bind.connect() as conn:
                found = conn.execute(statement, values).first()
    now = utcnow()
    if found is None or found.session_last_seen_at + idle_limit <= now:
        return None
    if touch and now - found.session_last_seen_at >= TOUCH_INTERVAL:
        db.execute(_TOUCH, {"b_session_id": found.session_id, "b_now": now})
    return found


def user_of(db: Session, row: sa.Row[Any]) -> User:
    """The ORM user of a session check's row, in ``db``: made from the row itself when it has
    the whole user (:data:`SESSION_CHECK`), else read."""
    known = db.identity_map.get(identity_key(User, row.id))
    if known is not None:
        return known  # type: ignore[return-value]
    columns = row._mapping
    if any(column not in columns for column in _USERS.c):
        return db.get_one(User, row.id)
    user = User(**{a.key: columns[a.columns[0]] for a in sa.inspect(User).column_attrs})
    # A row read from the database, not a new one: persistent in ``db`` with nothing to flush
    # (SQLAlchemy's way to rebuild an object from a cache).
    make_transient_to_detached(user)
    db.add(user)
    return user


def end_session(db: Session, token: str) -> None:
    db.execute(
        sa.update(UserSession)
        .where(UserSession.token_hash == token_hash(token), UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def end_sessions(db: Session, user_id: int, *, keep_token: str | None = None) -> int:
    """End every live session of the user, but the one of ``keep_token``; how many ended."""
    query = sa.update(UserSession).where(
        UserSession.user_id == user_id, UserSession.ended_at.is_(None)
    )
    if keep_token is not None:
        query = query.where(UserSession.token_hash != token_hash(keep_token))
    return db.execute(query.values(ended_at=utcnow())).rowcount


def active_sessions(db: Session, user_id: int, *, idle_limit: dt.timedelta) -> list[UserSession]:
    """The user's live sessions, most recently used first."""
    return list(
        db.scalars(
            sa.select(UserSession)
            .where(
                UserSession.user_id == user_id,
                UserSession.ended_at.is_(None),
                UserSession.last_seen_at > utcnow() - idle_limit,
            )
            .order_by(UserSession.last_seen_at.desc())
        )
    )


def is_familiar_address(db: Session, email: str, ip: str) -> bool:
    """Whether the account of ``email`` logged in from ``ip`` within the retention window.

    One query of the same shape whether or not the account exists, so its timing says nothing.
    """
    return bool(
        db.scalar(
            sa.select(
                sa.exists().where(
                    UserSession.user_id == User.id,
                    User.email == email,
                    UserSession.ip == ip,
                    UserSession.created_at > utcnow() - RETENTION,
                )
            )
        )
    )


def prune_sessions(db: Session, *, now: dt.datetime | None = None) -> int:
    """Delete rows of sessions that ended or went idle longer ago than the retention window."""
    cutoff = (now or utcnow()) - RETENTION
    return db.execute(
        sa.delete(UserSession).where(
            sa.or_(UserSession.ended_at < cutoff, UserSession.last_seen_at < cutoff)
        )
    ).rowcount
