"""The one way to write an audit row, called by every admin surface."""

from __future__ import annotations

import enum
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
