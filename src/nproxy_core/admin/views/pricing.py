"""Unit prices (DESIGN 4.12): what one image of every enabled (provider, model, resolution)
costs in units, from the provider's USD estimate or an admin's override; set or clear an
override through ``IUnitPrices.set_override`` / ``clear_override`` (audited
``pricing.unit_price_set`` / ``pricing.unit_price_cleared``, surface ``web``), the same as
``nproxy pricing set/clear``."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request

from nproxy_core.admin.page import act, actor, admin_action, admin_page, base, form
from nproxy_core.pricing import IUnitPrices


@admin_page("admin.pricing", "pricing.html")
def pricing(request: Request) -> dict[str, Any]:
    prices = request.find_service(IUnitPrices)
    table = prices.table(request.db)
    # One section per model (the table stays narrow enough for a phone), in the providers' order.
    models = [
        {"provider": provider, "model": model, "label": rows[0].label, "prices": rows}
        for (provider, model), group in groupby(table, key=lambda p: (p.provider, p.model))
        for rows in [list(group)]
    ]
    return base(
        request,
        "pricing",
        models=models,
        usd_per_unit=prices.usd_per_unit,
        overrides=sum(1 for p in table if p.override is not None),
    )


def _target(request: Request) -> tuple[str, str, str]:
    return form(request, "provider"), form(request, "model"), form(request, "resolution")


def _back(request: Request, provider: str, model: str) -> str:
    return request.route_path("admin.pricing", _anchor=f"model-{provider}-{model}")


@admin_action("admin.pricing.set")
def price_set(request: Request) -> HTTPSeeOther:
    provider, model, resolution = _target(request)

    def set_override() -> str:
        price = request.find_service(IUnitPrices).set_override(
            request.db, provider, model, resolution, form(request, "units"), actor(request)
        )
        return (
            f"{price.label} {price.resolution} now costs {price.units} unit"
            f"{'s' if price.units != 1 else ''} (default {price.default_units})."
        )

    return act(request, _back(request, provider, model), set_override)


@admin_action("admin.pricing.clear")
def price_clear(request: Request) -> HTTPSeeOther:
    provider, model, resolution = _target(request)

    def clear_override() -> str:
        prices = request.find_service(IUnitPrices)
        had = {(p.provider, p.model, p.resolution): p.override for p in prices.table(request.db)}
        price = prices.clear_override(request.db, provider, model, resolution, actor(request))
        units = f"{price.default_units} unit{'s' if price.default_units != 1 else ''}"
        if had.get((provider, model, resolution)) is None:
            return f"{price.label} {price.resolution} had no override: it costs {units}."
        return f"{price.label} {price.resolution} is back to its default: {units}."

    return act(request, _back(request, provider, model), clear_override)
