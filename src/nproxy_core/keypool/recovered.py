"""Closing the pool's alerts whose condition cleared, whichever process saw it clear: beat
checks every minute, and the admins are told "resolved".

- Out of daily quota: the project (or a key of no project) that a per-day quota put to rest is
  back in service once the provider's day turns.
- Provider unavailable: an image of that provider was made since the alert was last raised.
  The router that raised it resolves it at its own next success at once; this covers a success
  in another worker process, or after the raising one restarted.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.alerts import AlertKind
from nproxy_core.alerts.services import open_alerts
from nproxy_core.keypool.alerts import key_subject, project_subject, provider_subject
from nproxy_core.keypool.models import (
    COUNTS_FOR_HEALTH,
    AttemptOutcome,
    KeyAttempt,
    ProviderKey,
    key_name,
)
from nproxy_core.keypool.projects import cooling_until, projects_of


def _resting(keys: list[ProviderKey], now: dt.datetime) -> dict[str, bool]:
    """Every subject a daily-quota alert may name (a project, or a key of no project), and
    whether it still rests at ``now``: by the same rule the keys page shows."""
    subjects = {
        project_subject(view.provider, view.project): view.rests_until is not None
        for view in projects_of(keys, now)
    }
    for key in keys:
        if key.project is None:
            subjects[key_subject(key.provider, key.id)] = cooling_until(key, now) is not None
    return subjects


def resolve_rested_daily_quotas(db: Session, notifier: Any, now: dt.datetime) -> int:
    """Close each open "out of daily quota" alert whose project (or key, for a key without a
    project) rests no more: the provider's day turned and its keys are back in service, or
    they left the pool. The "resolved" message goes out once ``db`` commits. Returns how many
    alerts it closed."""
    subjects = [alert.subject for alert in open_alerts(db, AlertKind.PROJECT_DAILY_QUOTA)]
    if not subjects:
        return 0
    resting = _resting(list(db.scalars(sa.select(ProviderKey))), now)
    closed = 0
    for subject in subjects:
        if resting.get(subject):
            continue
        detail = (
            "its keys are back in service: the provider's daily quota reset"
            if subject in resting
            else "its keys are no longer in the pool"
        )
        notifier.resolve(AlertKind.PROJECT_DAILY_QUOTA, subject, detail, db=db)
        closed += 1
    return closed


def resolve_providers_back(db: Session, notifier: Any) -> int:
    """Close each open "provider unavailable" alert whose provider made an image since the
    alert was last raised (an admin's key test does not count); returns how many it closed."""
    alerts = open_alerts(db, AlertKind.POOL_EXHAUSTED)
    if not alerts:
        return 0
    providers = db.scalars(sa.select(ProviderKey.provider).distinct())
    by_subject = {provider_subject(provider): provider for provider in providers}
    closed = 0
    for alert in alerts:
        provider = by_subject.get(alert.subject)
        if provider is None:
            continue  # no key of it left: nothing will be made, the alert stays true
        made = db.execute(
            sa.select(KeyAttempt.key_id, ProviderKey.label)
            .join(ProviderKey, ProviderKey.id == KeyAttempt.key_id)
            .where(
                KeyAttempt.created_at > alert.last_seen,
                KeyAttempt.provider == provider,
                KeyAttempt.outcome == AttemptOutcome.SUCCESS,
                COUNTS_FOR_HEALTH,
            )
            .limit(1)
        ).first()
        if made is None:
            continue
        notifier.resolve(
            AlertKind.POOL_EXHAUSTED,
            alert.subject,
            f"images are being made again ({key_name(*made)})",
            db=db,
        )
        closed += 1
    return closed


def resolve_recovered(db: Session, notifier: Any, now: dt.datetime) -> int:
    """Every check above in one round (beat's task); returns how many alerts it closed."""
    return resolve_rested_daily_quotas(db, notifier, now) + resolve_providers_back(db, notifier)
