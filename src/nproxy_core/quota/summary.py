"""What a user sees of their subscription and quota: a status, a bucket and their packs.

The cycle is shown as a bucket, never a count (DESIGN 4.3); packs are the user's exact
purchase and shown exactly (DESIGN 4.12). ``max_units_now`` and ``max_batch_now`` are the
one exception: they are exact only when less than the largest submission is left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload
from zope.interface import implementer

from nproxy_core.accounts.interfaces import ISubscriptionSummary
from nproxy_core.billing.models import BillingCycle, PackBalance, Plan
from nproxy_core.billing.presenters import isoformat
from nproxy_core.db import utcnow
from nproxy_core.i18n.fields import localized
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import ModelCapabilities
from nproxy_core.pricing import IUnitPrices
from nproxy_core.quota.services import (
    allows_model,
    bucket,
    current,
    max_batch_now,
    usable_packs,
)


@dataclass(frozen=True)
class Standing:
    """What the user may spend now: the current cycle (with its plan) and usable packs."""

    cycle: BillingCycle | None
    packs: list[PackBalance] = field(default_factory=list)

    @property
    def plan(self) -> Plan | None:
        return None if self.cycle is None else self.cycle.plan

    def _plan_allows(self, model: str | None) -> bool:
        plan = self.plan
        return plan is not None and allows_model(plan.models, model)

    def allows(self, model: str) -> bool:
        """Whether the cycle's plan or a pack can pay for ``model``; True with neither (the
        refusal is then that there is no plan, not this model)."""
        if self.cycle is None and not self.packs:
            return True
        return self._plan_allows(model) or any(allows_model(p.models, model) for p in self.packs)

    def units(self, model: str | None = None) -> int:
        """Units that can pay for ``model`` (any model when None), cycle and packs together."""
        total = self.cycle.remaining if self.cycle is not None and self._plan_allows(model) else 0
        return total + sum(p.units_left for p in self.packs if allows_model(p.models, model))

    def max_batch(self, capabilities: ModelCapabilities) -> int:
        """The model's largest batch, capped by the plan's ``max_batch``."""
        plan = self.plan
        if plan is None or plan.max_batch is None or not self._plan_allows(capabilities.model):
            return capabilities.max_batch
        return max(1, min(capabilities.max_batch, plan.max_batch))


def standing(db: Session, user_id: int, now: dt.datetime | None = None) -> Standing:
    now = now or utcnow()
    cycle = db.scalar(
        current(sa.select(BillingCycle).options(joinedload(BillingCycle.plan)), user_id, now)
    )
    return Standing(cycle, usable_packs(db, user_id, now))


def packs_json(packs: list[PackBalance], localizer: Any = None) -> list[dict[str, Any]]:
    return [
        {
            "label": pack_label(p, localizer),
            "units_left": p.units_left,
            "expires_at": isoformat(p.expires_at),
        }
        for p in packs
    ]


def pack_label(balance: PackBalance, localizer: Any = None) -> str:
    """A balance's label for the reader of ``localizer``: a bought pack's name in their
    language while it is still the name it was bought under; any other label as written."""
    pack = balance.pack
    if pack is not None and balance.label == pack.name:
        return localized(pack, "name", localizer)
    return balance.label


def subscription_summary(
    db: Session,
    user_id: int,
    now: dt.datetime | None = None,
    *,
    prices: Mapping[tuple[str, str], Mapping[str, int]] | None = None,
    models: list[tuple[str, ModelCapabilities]] | None = None,
    localizer: Any = None,
) -> dict:
    """``{"subscription": {"status", "current_period_end", "plan"}, "quota": {"bucket"},
    "packs": [...]}``; given the enabled ``models`` and their ``prices``, ``quota`` also
    holds ``max_units_now`` and ``max_batch_now`` (of the default model and preset). Names
    (the plan's, the packs') are in the language of ``localizer`` (English without one)."""
    now = now or utcnow()
    state = standing(db, user_id, now)
    cycle = state.cycle
    quota: dict[str, int] = {
        "bucket": 0 if cycle is None else bucket(cycle.remaining, cycle.request_limit)
    }
    if models is not None and prices is not None:
        # The dearest full batch any model takes: below it, the figure is exact (DESIGN 4.3).
        largest = max(
            (
                caps.max_batch * max(prices[(name, caps.model)].values(), default=1)
                for name, caps in models
            ),
            default=0,
        )
        quota["max_units_now"] = min(state.units(), largest)
        quota["max_batch_now"] = 0
        if models:
            name, caps = models[0]
            cost = prices[(name, caps.model)].get(caps.resolutions[0], 1)
            quota["max_batch_now"] = max_batch_now(
                min(state.units(caps.model), largest), state.max_batch(caps), cost
            )
    summary = {"quota": quota, "packs": packs_json(state.packs, localizer)}
    if cycle is not None:
        plan = cycle.plan
        return summary | {
            "subscription": {
                "status": "active",
                "current_period_end": isoformat(cycle.ends_at),
                "plan": {"code": plan.code, "name": localized(plan, "name", localizer)},
            }
        }
    last_end = db.scalar(
        sa.select(sa.func.max(BillingCycle.ends_at)).where(
            BillingCycle.user_id == user_id, BillingCycle.ends_at <= now
        )
    )
    status = "none" if last_end is None else "expired"
    return summary | {
        "subscription": {
            "status": status,
            "current_period_end": isoformat(last_end),
            "plan": None,
        }
    }


def enabled_models(request: Any) -> list[tuple[str, ModelCapabilities]]:
    """Every model of every enabled provider, in the order of ``nproxy.providers``."""
    return [
        (name, caps)
        for name, provider in request.find_service(IPlugins).providers.items()
        for caps in provider.capabilities()
    ]


@implementer(ISubscriptionSummary)
class SubscriptionSummary:
    """The real subscription state for the dashboard and ``/api/v1/me``."""

    def summary(
        self, request: Any, user: Any, batch: bool = False, localizer: Any = None
    ) -> dict[str, Any]:
        localizer = localizer or getattr(request, "localizer", None)
        if not batch:
            return subscription_summary(request.db, user.id, localizer=localizer)
        return subscription_summary(
            request.db,
            user.id,
            prices=request.find_service(IUnitPrices).costs(request.db),
            models=enabled_models(request),
            localizer=localizer,
        )
