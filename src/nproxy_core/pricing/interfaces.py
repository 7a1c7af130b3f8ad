"""The unit prices service."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IUnitPrices(Interface):
    """What one image costs in units (DESIGN 4.12)."""

    usd_per_unit = Attribute("Decimal: nproxy.units.usd_per_unit")

    def default_units(provider, capabilities, resolution):
        """Units one image costs by default (from the provider's USD cost), overrides aside."""

    def override(db, provider, model, resolution):
        """An admin's price of one (provider, model, resolution), or None."""

    def cost(db, provider, capabilities, resolution):
        """Units one image of ``capabilities`` (a model of ``provider``) at ``resolution``
        costs now: the admin's override, else the default from the provider's USD cost."""

    def costs(db):
        """Every enabled model's prices: ``{(provider, model): {resolution: units}}``."""

    def per_image(db):
        """Each enabled model with the units of one image at its default preset:
        ``[{provider, model, label, units}]``."""

    def table(db):
        """Every enabled (provider, model, resolution) as a :class:`Price`, for admins."""

    def set_override(db, provider, model, resolution, units, actor):
        """Override one price (audited); ValidationError naming what is unknown or invalid."""

    def clear_override(db, provider, model, resolution, actor):
        """Back to the default price (audited)."""
