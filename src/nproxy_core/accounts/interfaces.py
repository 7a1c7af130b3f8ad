"""What other features tell the accounts pages about a user (billing provides it)."""

from __future__ import annotations

from typing import Any

from zope.interface import Interface


class ISubscriptionSummary(Interface):
    def summary(
        request: Any, user: Any, batch: bool = False, localizer: Any = None
    ) -> dict[str, Any]:
        """``{"subscription": {"status", "current_period_end"}, "quota": {"bucket"}}``; with
        ``batch``, ``quota.max_batch_now`` too (``/api/v1/me`` only, DESIGN 4.3). Names in the
        language of ``localizer``, else of the request."""


class ISecondFactor(Interface):
    """What login asks of two-factor login (the twofactor feature provides it): whether an
    account has it, and whether a code it was given is good. Accounts sits below that feature
    and so knows it only through this interface."""

    def is_enabled(db: Any, user_id: int) -> bool:
        """Whether the account has confirmed two-factor login (a login then needs a code)."""

    def verify(db: Any, user_id: int, code: str) -> bool:
        """Whether ``code`` (a TOTP code or a recovery code) is good for the account; a good
        one is used up in the caller's transaction, so it never works twice."""

    def reset(db: Any, user_id: int, *, actor: Any) -> None:
        """Turn two-factor login off for an operator (a locked-out admin), audited; Conflict
        when it is off."""


class UserRegistered:
    """A Pyramid event: an account was just made by registration (web or API), in the
    request's transaction. Features above accounts (referrals) subscribe to it."""

    def __init__(self, request: Any, user: Any) -> None:
        self.request = request
        self.user = user
