"""The service that holds the enabled plugins."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IPlugins(Interface):
    """The providers and payment processors enabled in the settings, started once."""

    providers = Attribute("dict[str, Provider]: enabled providers by entry-point name")
    payments = Attribute("dict[str, PaymentProcessor]: enabled processors by entry-point name")

    def provider(name):
        """The enabled provider of that name, or None."""

    def processor(name):
        """The enabled payment processor of that name, or None."""
