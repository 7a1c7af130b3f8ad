"""Server-side sessions: a row per logged-in browser, ended by logging out (here or everywhere)
and by a password change or reset; and the addresses an account is known to use."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

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


def find_session(
    db: Session, token: str, *, idle_limit: dt.timedelta
) -> tuple[UserSession, User] | None:
    """The live session of ``token`` with its user, in one round trip, touched; None if it
    ended or sat idle too long."""
    found = db.execute(
        sa.select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == token_hash(token), UserSession.ended_at.is_(None))
    ).first()
    now = utcnow()
    if found is None or found[0].last_seen_at + idle_limit <= now:
        return None
    row, user = found
    if now - row.last_seen_at >= TOUCH_INTERVAL:
        row.last_seen_at = now
    return row, user


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
