"""What other features tell the accounts pages about a user."""

from __future__ import annotations

from typing import Any

from zope.interface import Interface, implementer


class ISubscriptionSummary(Interface):
    def summary(request: Any, user: Any) -> dict[str, Any]:
        """``{"subscription": {"status", "current_period_end"}, "quota": {"bucket"}}``."""


@implementer(ISubscriptionSummary)
class NoBilling:
    """Until a billing feature registers its own, nobody has a subscription."""

    def summary(self, request: Any, user: Any) -> dict[str, Any]:
        return {
            "subscription": {"status": "none", "current_period_end": None},
            "quota": {"bucket": 0},
        }
