"""Closing the "out of daily quota" alerts: a project (or a lone key) that a per-day quota put
to rest is back in service once the provider's day turns; beat checks every minute and the
admins are told "resolved"."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.keypool.alerts import key_subject, project_subject
from nproxy_core.keypool.models import KeyState, ProviderKey
from nproxy_core.keypool.services import project_rests_until
from nproxy_core.telegram import AlertKind, open_subjects


def _still_resting(db: Session, key: ProviderKey, now: dt.datetime) -> bool:
    if key.project is not None:
        rests_until = project_rests_until(db, key.provider, key.project)
        return rests_until is not None and rests_until > now
    return (
        key.state is KeyState.COOLDOWN
        and key.cooldown_until is not None
        and key.cooldown_until > now
    )


def resolve_rested_daily_quotas(db: Session, notifier: Any, now: dt.datetime) -> int:
    """Close each open "out of daily quota" alert whose project (or key, for a key without a
    project) rests no more: the provider's day turned and its keys are back in service, or
    they left the pool. The "resolved" message goes out once ``db`` commits. Returns how many
    alerts it closed."""
    subjects = open_subjects(db, AlertKind.PROJECT_DAILY_QUOTA)
    if not subjects:
        return 0
    # Each subject names a project or a lone key: the keys of the pool say which, and whether
    # it still rests. One key stands for its project (they rest together).
    by_subject: dict[str, ProviderKey] = {}
    for key in db.scalars(sa.select(ProviderKey).order_by(ProviderKey.id)):
        if key.project is not None:
            by_subject.setdefault(project_subject(key.provider, key.project), key)
        else:
            by_subject[key_subject(key.provider, key.id)] = key
    closed = 0
    for subject in subjects:
        key = by_subject.get(subject)
        if key is not None and _still_resting(db, key, now):
            continue
        detail = (
            "its keys are back in service: the provider's daily quota reset"
            if key is not None
            else "its keys are no longer in the pool"
        )
        notifier.resolve(AlertKind.PROJECT_DAILY_QUOTA, subject, detail, db=db)
        closed += 1
    return closed
