"""Admin actions on accounts: block, unblock, change role. Shared by every surface (web admin,
Telegram bot, CLI); each writes one audit row in the caller's transaction, and a refused one
raises before it changes anything.

The guards keep the product administrable: an admin cannot block or demote themselves, and the
last admin who can log in cannot be blocked or demoted. Admin rows are locked while that is
decided, so two admins demoting each other at once cannot both succeed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.accounts.models import Role, User
from nproxy_core.accounts.schemas import normalize_email
from nproxy_core.audit import Actor
from nproxy_core.errors import Conflict, NotFound, ValidationError

__all__ = ["block_user", "get_user", "set_role", "unblock_user", "user_by_email", "user_view"]


def user_view(user: User) -> dict[str, Any]:
    """What an audit row keeps of an account: never its password hash."""
    return {"email": user.email, "role": str(user.role), "blocked": user.is_blocked}


def get_user(db: Session, user_id: int, *, for_update: bool = False) -> User:
    query = sa.select(User).where(User.id == user_id)
    if for_update:
        query = query.with_for_update()
    user = db.scalar(query.execution_options(populate_existing=True))
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def user_by_email(db: Session, email: str) -> User:
    """The account with this email (normalised), or NotFound naming it."""
    address = normalize_email(email)
    user = db.scalar(sa.select(User).where(User.email == address))
    if user is None:
        raise NotFound(f"no user with email {address}")
    return user


def _lock_admins_who_can_log_in(db: Session) -> list[int]:
    """The ids of the admins who are not blocked, their rows locked until commit.

    Taken before the target's own row, and in id order, so concurrent blocks and demotions
    wait for each other instead of deadlocking; the one that waited sees the other's change
    (an admin demoted meanwhile no longer matches) and counts right.
    """
    return list(
        db.scalars(
            sa.select(User.id)
            .where(User.role == Role.ADMIN, User.is_blocked.is_(False))
            .order_by(User.id)
            .with_for_update()
        )
    )


def _guard_last_admin(user: User, admins: list[int], doing: str) -> None:
    if user.role == Role.ADMIN and not user.is_blocked and not set(admins) - {user.id}:
        raise Conflict(f"{user.email} is the last admin who can log in: {doing} is refused")


def _guard_self(actor: Actor, user: User, doing: str) -> None:
    if actor.user_id is not None and actor.user_id == user.id:
        raise Conflict(f"You cannot {doing} yourself.")


def block_user(db: Session, user_id: int, *, actor: Actor) -> User:
    """Block an account: it can no longer log in, and its sessions end now."""
    admins = _lock_admins_who_can_log_in(db)
    user = get_user(db, user_id, for_update=True)
    _guard_self(actor, user, "block")
    if user.is_blocked:
        raise Conflict(f"{user.email} is already blocked")
    _guard_last_admin(user, admins, "blocking them")
    before = user_view(user)
    user.is_blocked = True
    # Every session carries the version it was made with: this one ends them all.
    user.session_version = user.session_version + 1
    db.flush()
    actor.record(db, "user.block", "user", user.id, before, user_view(user))
    return user


def unblock_user(db: Session, user_id: int, *, actor: Actor) -> User:
    """Let a blocked account log in again (with its password; old sessions stay ended)."""
    user = get_user(db, user_id, for_update=True)
    if not user.is_blocked:
        raise Conflict(f"{user.email} is not blocked")
    before = user_view(user)
    user.is_blocked = False
    db.flush()
    actor.record(db, "user.unblock", "user", user.id, before, user_view(user))
    return user


def parse_role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError(
            f"role must be one of {', '.join(r.value for r in Role)}", fields={"role": "invalid"}
        ) from None


def set_role(db: Session, user_id: int, role: Any, *, actor: Actor) -> User:
    """Make an account an admin or a plain user."""
    new = parse_role(role)
    admins = _lock_admins_who_can_log_in(db) if new == Role.USER else []
    user = get_user(db, user_id, for_update=True)
    if user.role == new:
        raise Conflict(f"{user.email} is already {new}")
    if new == Role.USER:
        _guard_self(actor, user, "demote")
        _guard_last_admin(user, admins, "demoting them")
    before = user_view(user)
    user.role = new
    db.flush()
    actor.record(db, "user.role", "user", user.id, before, user_view(user))
    return user
