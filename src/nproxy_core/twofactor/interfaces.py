"""The two-factor service: what login asks (:class:`ISecondFactor`, declared by accounts) and
what the enrolment pages do."""

from __future__ import annotations

from typing import Any

from nproxy_core.accounts.interfaces import ISecondFactor

__all__ = ["ISecondFactor", "ITwoFactor"]


class ITwoFactor(ISecondFactor):
    """Enrolment, recovery codes and turning it off; each change audited."""

    def status(db: Any, user_id: int) -> Any:
        """A :class:`~nproxy_core.twofactor.services.TwoFactorStatus` of the account."""

    def enrolment(db: Any, user: Any) -> Any:
        """The enrolment in progress (secret, URI, QR code), or None."""

    def start(db: Any, user: Any) -> Any:
        """Begin (or begin again) an enrolment with a new secret; Conflict when it is on."""

    def confirm(db: Any, user: Any, code: Any, *, actor: Any) -> list[str]:
        """Turn it on with a first good code from the new secret; the recovery codes, in
        clear for the only time."""

    def disable(db: Any, user: Any, code: Any, *, actor: Any) -> None:
        """Turn it off; needs a good code."""

    def regenerate(db: Any, user: Any, code: Any, *, actor: Any) -> list[str]:
        """New recovery codes (the old ones stop working); needs a good code."""
