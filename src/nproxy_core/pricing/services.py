"""Unit prices: the default from each provider's USD cost, and the admins' overrides."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.errors import ValidationError
from nproxy_core.plugins import ModelCapabilities, Provider
from nproxy_core.pricing.interfaces import IUnitPrices
from nproxy_core.pricing.models import UnitPrice

__all__ = ["MAX_UNITS", "Price", "UnitPrices", "units_for_usd"]

#: The most an override may charge for one image: a typo of 1000 for 10 stays harmless.
MAX_UNITS = 1000


def units_for_usd(usd: Decimal | None, usd_per_unit: Decimal) -> int:
    """``max(1, round_half_up(usd / usd_per_unit))``; one unit when the cost is unknown."""
    if usd is None:
        return 1
    units = (Decimal(usd) / usd_per_unit).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(1, int(units))


@dataclass(frozen=True)
class Price:
    """One (provider, model, resolution) as admins see it."""

    provider: str
    model: str
    label: str
    resolution: str
    usd: Decimal | None
    default_units: int
    override: int | None

    @property
    def units(self) -> int:
        return self.default_units if self.override is None else self.override

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "label": self.label,
            "resolution": self.resolution,
            "usd": None if self.usd is None else format(self.usd, "f"),
            "default_units": self.default_units,
            "override": self.override,
            "units": self.units,
        }


@implementer(IUnitPrices)
class UnitPrices:
    def __init__(self, usd_per_unit: Decimal, plugins: Any) -> None:
        self.usd_per_unit = usd_per_unit
        self.plugins = plugins

    # --- defaults -------------------------------------------------------------------------

    def _usd(self, provider: Provider, caps: ModelCapabilities, resolution: str) -> Decimal | None:
        usd = caps.usd_per_image.get(resolution)
        return provider.price_per_image if usd is None else usd

    def default_units(self, provider_name: str, caps: ModelCapabilities, resolution: str) -> int:
        provider = self.plugins.providers[provider_name]
        return units_for_usd(self._usd(provider, caps, resolution), self.usd_per_unit)

    def _models(self) -> Iterator[tuple[str, Provider, ModelCapabilities]]:
        for name, provider in self.plugins.providers.items():
            for caps in provider.capabilities():
                yield name, provider, caps

    def _prices(self, overrides: Mapping[tuple[str, str, str], int]) -> Iterator[Price]:
        """Every enabled (provider, model, resolution), with ``overrides`` applied."""
        for name, provider, caps in self._models():
            for resolution in caps.resolutions:
                usd = self._usd(provider, caps, resolution)
                yield Price(
                    provider=name,
                    model=caps.model,
                    label=caps.display_name,
                    resolution=resolution,
                    usd=usd,
                    default_units=units_for_usd(usd, self.usd_per_unit),
                    override=overrides.get((name, caps.model, resolution)),
                )

    @staticmethod
    def _overrides(db: Session) -> dict[tuple[str, str, str], int]:
        rows = db.execute(
            sa.select(UnitPrice.provider, UnitPrice.model, UnitPrice.resolution, UnitPrice.units)
        )
        return {(r.provider, r.model, r.resolution): r.units for r in rows}

    # --- what a submission and the pages ask -------------------------------------------------

    def override(self, db: Session, provider: str, model: str, resolution: str) -> int | None:
        """An admin's price of one (provider, model, resolution), or None."""
        return db.scalar(
            sa.select(UnitPrice.units).where(
                UnitPrice.provider == provider,
                UnitPrice.model == model,
                UnitPrice.resolution == resolution,
            )
        )

    def cost(
        self, db: Session, provider: str, capabilities: ModelCapabilities, resolution: str
    ) -> int:
        override = self.override(db, provider, capabilities.model, resolution)
        if override is not None:
            return override
        return self.default_units(provider, capabilities, resolution)

    def costs(self, db: Session) -> dict[tuple[str, str], dict[str, int]]:
        prices: dict[tuple[str, str], dict[str, int]] = {}
        for price in self._prices(self._overrides(db)):
            prices.setdefault((price.provider, price.model), {})[price.resolution] = price.units
        return prices

    def per_image(self, db: Session) -> list[dict[str, Any]]:
        """Each enabled model with the units of one image at its default (first) preset:
        what "about N images" estimates divide by. ``[{provider, model, label, units}]``."""
        costs = self.costs(db)
        return [
            {
                "provider": name,
                "model": caps.model,
                "label": caps.display_name,
                "units": costs[(name, caps.model)][caps.resolutions[0]],
            }
            for name, _, caps in self._models()
            if caps.resolutions
        ]

    def table(self, db: Session) -> list[Price]:
        return list(self._prices(self._overrides(db)))

    # --- admins' overrides -----------------------------------------------------------------

    def _find(self, provider: Any, model: Any, resolution: Any) -> Price:
        prices = list(self._prices({}))
        for price in prices:
            if (price.provider, price.model, price.resolution) == (provider, model, resolution):
                return price
        if (provider, model) not in {(p.provider, p.model) for p in prices}:
            raise ValidationError(
                f"There is no model {str(model)[:128]!r} of provider {str(provider)[:64]!r} "
                "enabled here.",
                fields={"model": "unknown"},
            )
        raise ValidationError(
            f"The model {str(model)[:128]!r} has no resolution {str(resolution)[:64]!r}.",
            fields={"resolution": "unknown"},
        )

    def set_override(
        self, db: Session, provider: Any, model: Any, resolution: Any, units: Any, actor: Any
    ) -> Price:
        price = self._find(provider, model, resolution)
        units = _units(units)
        row = _row(db, price)
        before = None if row is None else {"units": row.units}
        if row is None:
            row = UnitPrice(provider=price.provider, model=price.model, resolution=price.resolution)
            db.add(row)
        row.units = units
        row.updated_by = actor.name
        db.flush()
        actor.record(
            db, "pricing.unit_price_set", "unit_price", _target(price), before, {"units": units}
        )
        return Price(**{**price.__dict__, "override": units})

    def clear_override(
        self, db: Session, provider: Any, model: Any, resolution: Any, actor: Any
    ) -> Price:
        price = self._find(provider, model, resolution)
        row = _row(db, price)
        if row is not None:
            actor.record(
                db,
                "pricing.unit_price_cleared",
                "unit_price",
                _target(price),
                {"units": row.units},
                {"units": price.default_units},
            )
            db.delete(row)
            db.flush()
        return price


def _units(raw: Any) -> int:
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_UNITS:
        raise ValidationError(
            f"The price must be a whole number of units from 1 to {MAX_UNITS}.",
            fields={"units": "invalid"},
        )
    return raw


def _row(db: Session, price: Price) -> UnitPrice | None:
    return db.scalar(
        sa.select(UnitPrice)
        .where(
            UnitPrice.provider == price.provider,
            UnitPrice.model == price.model,
            UnitPrice.resolution == price.resolution,
        )
        .with_for_update()
    )


def _target(price: Price) -> str:
    return f"{price.provider}:{price.model}:{price.resolution}"
