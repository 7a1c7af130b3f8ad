"""The one way to write an audit row, called by every admin surface."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from nproxy_core.audit.models import AuditEntry


class Surface(enum.StrEnum):
    WEB = "web"
    TELEGRAM = "telegram"
    CLI = "cli"
    SYSTEM = "system"


def record(
    db: Session,
    *,
    actor: str,
    surface: Surface,
    action: str,
    target_type: str,
    target_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    actor_user_id: int | None = None,
) -> AuditEntry:
    """Add an audit row to the current transaction: it commits with the change it records."""
    entry = AuditEntry(
        actor=actor,
        actor_user_id=actor_user_id,
        surface=str(surface),
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        before=before,
        after=after,
    )
    db.add(entry)
    return entry


@dataclass(frozen=True)
class Actor:
    """Who acts and from where, as the audit log records it.

    Every admin action takes one: the web admin makes it from the logged-in admin, the
    Telegram bot from the paired admin, the console from ``nproxy``'s operator. ``user_id`` is
    the account behind the actor when there is one; the guards that stop an admin from locking
    themselves out compare it with the target.
    """

    name: str
    surface: Surface
    user_id: int | None = None

    @classmethod
    def of_user(cls, user: Any, surface: Surface) -> Actor:
        # An account made in the customer Telegram bot has no email until its owner adds one.
        return cls(user.email or f"user #{user.id}", surface, user.id)

    def record(
        self,
        db: Session,
        action: str,
        target_type: str,
        target_id: Any,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """This actor's audit row for ``action``, in the caller's transaction."""
        return record(
            db,
            actor=self.name,
            surface=self.surface,
            action=action,
            target_type=target_type,
            target_id=target_id,
            before=before,
            after=after,
            actor_user_id=self.user_id,
        )


#: The application itself, acting on its own (a refund ending a cycle, a review reopened).
SYSTEM = Actor("system", Surface.SYSTEM)
