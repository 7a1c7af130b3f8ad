"""Unit prices (DESIGN 4.12): what one image costs in units, per provider, model and resolution.

A provider declares its estimated USD cost of one image; the default price in units is
``max(1, round_half_up(usd / nproxy.units.usd_per_unit))``. An admin's override (a row of
``unit_prices``, set in ``/admin/pricing`` or with ``nproxy pricing``) wins over the default.
Quota holds, the chat's cost line and every "images per plan" estimate ask this feature.
"""

from __future__ import annotations

from typing import Any

from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import positive_float, setting
from nproxy_core.pricing.interfaces import IUnitPrices
from nproxy_core.pricing.services import UnitPrices

__all__ = ["IUnitPrices", "UnitPrices"]


def includeme(config: Any) -> None:
    settings = config.get_settings()
    usd_per_unit = setting(settings, "nproxy.units.usd_per_unit", default="0.039", cast=_usd)
    config.register_service_factory(
        lambda context, request: UnitPrices(usd_per_unit, request.find_service(IPlugins)),
        IUnitPrices,
    )


def _usd(raw: Any) -> Any:
    from decimal import Decimal, InvalidOperation

    positive_float(raw)
    try:
        return Decimal(str(raw).strip())
    except InvalidOperation as exc:  # pragma: no cover - positive_float already refused it
        raise ValueError("must be a positive amount in USD") from exc
