"""How routing an image can fail, besides the plugin's own user-caused errors."""

from __future__ import annotations


class PoolUnavailable(Exception):
    """Every eligible key of the provider was tried (or there was none): the image fails.

    The generation pipeline maps this to ``provider_unavailable``; it consumes no quota.
    ``message`` is safe to show to users.
    """

    code = "provider_unavailable"
    message = "Image generation is temporarily unavailable. Please try again in a few minutes."

    def __init__(self, provider: str, *, tried: int) -> None:
        super().__init__(f"no key of provider {provider!r} could make the image (tried {tried})")
        self.provider = provider
        self.tried = tried


class ProviderNotEnabled(LookupError):
    """The request names a provider that is not enabled in ``nproxy.providers``."""
