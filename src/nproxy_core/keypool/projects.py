"""A key pool's projects as an admin sees them (the console's ``keys list`` and the web admin's
keys page): per provider project, its keys, their estimated spend, and whether it rests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from nproxy_core.keypool.models import IN_SERVICE, KeyState, ProviderKey


@dataclasses.dataclass(frozen=True)
class ProjectView:
    """A named project of one provider: its keys, their estimated spend, and until when it
    rests (every in-service key of it cooling down, as after a rate limit; else None)."""

    provider: str
    project: str
    keys: list[int]
    in_service: int
    estimated_spend: Decimal
    rests_until: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "estimated_spend": str(self.estimated_spend),
            "rests_until": None if self.rests_until is None else self.rests_until.isoformat(),
        }


def cooling_until(key: ProviderKey, now: dt.datetime) -> dt.datetime | None:
    """The deadline ``key`` cools down until, if it is cooling down at ``now``."""
    if key.state == KeyState.COOLDOWN and key.cooldown_until is not None:
        return key.cooldown_until if key.cooldown_until > now else None
    return None


def projects_of(keys: Iterable[ProviderKey], now: dt.datetime) -> list[ProjectView]:
    """Each named project of ``keys`` (per provider), by provider and name.

    A key without a project is its own project: its spend is the key's, so it is not listed.
    """
    projects: dict[tuple[str, str], list[ProviderKey]] = {}
    for key in keys:
        if key.project is not None:
            projects.setdefault((key.provider, key.project), []).append(key)
    views = []
    for (provider, project), members in sorted(projects.items()):
        serving = [k for k in members if k.state in IN_SERVICE]
        deadlines = [d for k in serving if (d := cooling_until(k, now)) is not None]
        resting = bool(serving) and len(deadlines) == len(serving)
        views.append(
            ProjectView(
                provider=provider,
                project=project,
                keys=[k.id for k in members],
                in_service=len(serving),
                estimated_spend=sum((k.estimated_spend for k in members), Decimal(0)),
                rests_until=min(deadlines) if resting else None,
            )
        )
    return views


def project_views(keys: Iterable[ProviderKey], now: dt.datetime) -> list[dict[str, Any]]:
    """:func:`projects_of` as JSON (the console's ``keys list --json``)."""
    return [view.as_json() for view in projects_of(keys, now)]
