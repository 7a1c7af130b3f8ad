"""Billing's services: the one plan nproxy sells."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IPlan(Interface):
    """The plan of ``nproxy.plan.*`` (see Plan)."""

    name = Attribute("str")
    price = Attribute("Decimal")
    currency = Attribute("str")
    request_limit = Attribute("int: requests per cycle, never shown to users")
    period_months = Attribute("int")

    def public_json():
        """What GET /api/v1/plan answers."""
