"""Billing's services: the plans (rows of ``plans``, see billing.plans) and the credit packs
(rows of ``credit_packs``, see billing.packs)."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IPlan(Interface):
    """The default plan's terms as the ``nproxy.plan.*`` settings give them (see plan.Plan):
    activation falls back on them for a payment that recorded no plan."""

    code = Attribute("str: the default plan's code (nproxy.plan.default)")
    name = Attribute("str")
    price = Attribute("Decimal")
    currency = Attribute("str")
    request_limit = Attribute("int: units per cycle, never shown to users")
    period_months = Attribute("int")


class IPlans(Interface):
    """The plans, and which one is the default (``nproxy.plan.default``)."""

    default_code = Attribute("str: the code of the plan used where none is named")

    def default(db):
        """The default plan's row; NotFound when it does not exist."""

    def get(db, code):
        """The plan ``code``; NotFound when there is none."""

    def for_sale(db):
        """The public, active plans, cheapest first."""

    def to_buy(db, code, processor):
        """The plan a checkout asks for, or ValidationError naming why it cannot be bought."""


class IPacks(Interface):
    """The credit packs (rows of ``credit_packs``, see billing.packs)."""

    def get(db, code):
        """The pack ``code``; NotFound when there is none."""

    def for_sale(db):
        """The public, active packs, cheapest first."""

    def to_buy(db, code, processor):
        """The pack a checkout asks for, or ValidationError naming why it cannot be bought."""
