"""The default plan's terms as the ``nproxy.plan.*`` settings give them.

Plans are rows (``billing.models.Plan``, ``billing.plans``). These settings made the row
``monthly`` (migration 0014) and keep setting its terms at start-up until it is edited with
``nproxy plans edit`` (``billing.plans.reconcile_default_plan``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from zope.interface import implementer

from nproxy_core.billing.interfaces import IPlan
from nproxy_core.plugins import positive_int, setting

_CURRENCY = re.compile(r"^[A-Z0-9]{2,10}$")
_CODE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


def _price(value: str) -> Decimal:
    price = Decimal(value)  # InvalidOperation is an ArithmeticError: malformed
    # Numeric(18, 8) holds the amount: refuse what it would silently round.
    if not price.is_finite() or price <= 0 or price.as_tuple().exponent < -8:
        raise ValueError(value)
    return price


def _code(value: str) -> str:
    code = value.strip().lower()
    if not _CODE.match(code):
        raise ValueError(value)
    return code


def _currency(value: str) -> str:
    if not _CURRENCY.match(value.upper()):
        raise ValueError(value)
    return value.upper()


@implementer(IPlan)
@dataclass(frozen=True)
class Plan:
    name: str
    price: Decimal
    currency: str
    #: Requests per cycle: the pricing page says what a period buys; a user's own usage is
    #: only ever shown as a bucket of what is left.
    request_limit: int
    period_months: int
    #: The row these terms are for.
    code: str = "monthly"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Plan:
        """Read ``nproxy.plan.*``; raises ConfigurationError naming a bad setting."""
        return cls(
            name=setting(settings, "nproxy.plan.name", required=True),
            price=setting(settings, "nproxy.plan.price", required=True, cast=_price),
            currency=setting(settings, "nproxy.plan.currency", required=True, cast=_currency),
            request_limit=setting(settings, "nproxy.plan.request_limit", cast=positive_int),
            period_months=setting(settings, "nproxy.plan.period_months", cast=positive_int),
            code=setting(settings, "nproxy.plan.default", default="monthly", cast=_code),
        )

    @property
    def units(self) -> int:
        return self.request_limit

    def public_json(self) -> dict[str, Any]:
        """What ``GET /api/v1/plan`` answers: no request limit (users see buckets only)."""
        return {
            "name": self.name,
            "price": {"amount": format(self.price, "f"), "currency": self.currency},
            "period_months": self.period_months,
        }
