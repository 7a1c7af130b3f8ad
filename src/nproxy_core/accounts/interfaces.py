"""What other features tell the accounts pages about a user (billing provides it)."""

from __future__ import annotations

from typing import Any

from zope.interface import Interface


class ISubscriptionSummary(Interface):
    def summary(request: Any, user: Any, batch: bool = False) -> dict[str, Any]:
        """``{"subscription": {"status", "current_period_end"}, "quota": {"bucket"}}``; with
        ``batch``, ``quota.max_batch_now`` too (``/api/v1/me`` only, DESIGN 4.3)."""
