"""How making an image can fail, and what users read for each failure code.

An image fails with the plugin's :class:`~nproxy_core.plugins.UserCausedError` (the request is
at fault; its ``code`` says how) or with :class:`PoolUnavailable` (no key could make it). Those
codes are the generation error codes of the API (DESIGN.md 6); :data:`FAILURE_MESSAGES` holds
the one text users read for each, whichever surface shows it.
"""

from __future__ import annotations

from nproxy_core.i18n import _
from nproxy_core.plugins import ContentPolicyError, InvalidInputError


class PoolUnavailable(Exception):
    """Every eligible key of the provider was tried (or there was none): the image fails.

    The generation pipeline maps this to ``provider_unavailable``; it consumes no quota.
    ``message`` is safe to show to users.
    """

    code = "provider_unavailable"

    def __init__(self, provider: str, *, tried: int) -> None:
        super().__init__(f"no key of provider {provider!r} could make the image (tried {tried})")
        self.provider = provider
        self.tried = tried

    @property
    def message(self) -> str:
        return FAILURE_MESSAGES[self.code]


class ProviderNotEnabled(LookupError):
    """The request names a provider that is not enabled in ``nproxy.providers``."""


#: What users read for each failure code: what happened and what to do, never a key or proxy.
#: Stored in English with the generation; marked, so that each answer reads it in its reader's
#: language.
FAILURE_MESSAGES: dict[str, str] = {
    ContentPolicyError.code: _(
        "The image was blocked by the provider's content policy. "
        "Try rephrasing the prompt or using different input images."
    ),
    InvalidInputError.code: _(
        "The provider could not use this request (for example an input image or a setting it "
        "does not accept). Try different input images or settings."
    ),
    PoolUnavailable.code: _(
        "Image generation is temporarily unavailable. Please try again in a few minutes."
    ),
}


#: Every failure code, the one most useful to show first first (a request the user can fix
#: beats an outage): the one list that the runner, the admin's statistics and charts follow.
FAILURE_CODES: tuple[str, ...] = tuple(FAILURE_MESSAGES)


def failure_message(code: str) -> str:
    """The text for ``code``; an unknown code reads as the pool being unavailable."""
    return FAILURE_MESSAGES.get(code, FAILURE_MESSAGES[PoolUnavailable.code])
