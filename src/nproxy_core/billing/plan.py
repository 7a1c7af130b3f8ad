"""The one plan nproxy sells, read from the ``nproxy.plan.*`` settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pyramid.registry import Registry

REGISTRY_KEY = "nproxy.plan"
_CURRENCY = re.compile(r"^[A-Z0-9]{2,10}$")


class PlanSettingError(ValueError):
    """A ``nproxy.plan.*`` setting is malformed; the message names it."""


@dataclass(frozen=True)
class Plan:
    name: str
    price: Decimal
    currency: str
    #: Requests per cycle. Never shown to users: they only see a bucket of what is left.
    request_limit: int
    period_months: int

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Plan:
        name = str(settings.get("nproxy.plan.name") or "").strip()
        if not name:
            raise PlanSettingError("missing required setting 'nproxy.plan.name'")
        raw_price = str(settings.get("nproxy.plan.price") or "").strip()
        try:
            price = Decimal(raw_price)
        except InvalidOperation:
            price = Decimal("NaN")
        # Numeric(18, 8) holds the amount: refuse what it would silently round.
        if not price.is_finite() or price <= 0 or price.as_tuple().exponent < -8:
            raise PlanSettingError(f"malformed setting 'nproxy.plan.price': {raw_price!r}")
        currency = str(settings.get("nproxy.plan.currency") or "").strip().upper()
        if not _CURRENCY.match(currency):
            raise PlanSettingError(f"malformed setting 'nproxy.plan.currency': {currency!r}")
        return cls(
            name=name,
            price=price,
            currency=currency,
            request_limit=int(settings["nproxy.plan.request_limit"]),
            period_months=int(settings["nproxy.plan.period_months"]),
        )

    def public_json(self) -> dict[str, Any]:
        """What ``GET /api/v1/plan`` answers: no request limit (users see buckets only)."""
        return {
            "name": self.name,
            "price": {"amount": format(self.price, "f"), "currency": self.currency},
            "period_months": self.period_months,
        }


def get_plan(registry: Registry) -> Plan:
    return registry[REGISTRY_KEY]
