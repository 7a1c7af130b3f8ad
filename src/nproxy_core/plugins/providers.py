"""The image provider contract: what a provider is asked, what it answers, and the errors that
tell the key pool what happened to a key."""

from __future__ import annotations

import abc
import datetime as dt
import enum
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from nproxy_core.plugins.contract import CONTRACT_VERSION
from nproxy_core.plugins.images import IMAGE_FORMATS


class Mode(enum.StrEnum):
    TEXT_TO_IMAGE = "text_to_image"
    IMAGE_TO_IMAGE = "image_to_image"


@dataclass(frozen=True)
class ModelCapabilities:
    """What a provider's model accepts; submissions are validated against this."""

    model: str
    modes: tuple[Mode, ...]
    resolutions: tuple[str, ...]
    max_batch: int = 4
    supports_strength: bool = False
    max_input_images: int = 0
    input_mime_types: tuple[str, ...] = tuple(IMAGE_FORMATS)
    max_input_bytes: int = 10 * 1024 * 1024
    max_input_side: int = 4096
    #: Each resolution preset's aspect ratio ("W:H"), where the provider can say: the developer
    #: API maps a requested size or ratio onto the nearest preset with it.
    aspect_ratios: Mapping[str, str] = field(default_factory=dict)
    #: Each preset's output size in pixels (width, height), where the provider knows it; the
    #: chat shapes its placeholders and labels by it. Derived from the ratio when left out.
    sizes: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: The name people see (``Nano Banana Pro``); the model id when left empty.
    label: str = ""
    #: The estimated cost to the business of one image at each resolution preset, in USD
    #: (DESIGN 4.12). The core prices images in units from it; a preset left out falls back to
    #: :attr:`Provider.price_per_image`, and without that to one unit.
    usd_per_image: Mapping[str, Decimal] = field(default_factory=dict)
    #: ``ga`` (generally available) or ``preview`` (the provider may change or retire it).
    status: str = "ga"
    #: Earlier ids that still name this model: a submission naming a retired preview id is
    #: made by its successor.
    aliases: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return self.label or self.model

    def as_dict(self, provider: str) -> dict[str, Any]:
        return {
            "provider": provider,
            "model": self.model,
            "label": self.display_name,
            "status": self.status,
            "aliases": list(self.aliases),
            "modes": [str(m) for m in self.modes],
            "resolutions": list(self.resolutions),
            "max_batch": self.max_batch,
            "supports_strength": self.supports_strength,
            "max_input_images": self.max_input_images,
        }


@dataclass(frozen=True)
class InputImage:
    data: bytes
    mime: str
    #: What this provider returned with the image when it made it
    #: (:attr:`GeneratedImage.continuation`), given back only to the same provider and model:
    #: e.g. Gemini's ``thoughtSignature``, without which it refuses its own image as an input.
    continuation: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ImageRequest:
    """One image to make: a batch of N is N of these."""

    mode: Mode
    prompt: str
    resolution: str
    strength: float | None = None
    inputs: tuple[InputImage, ...] = ()
    model: str | None = None
    # Index of the image within its batch, so deterministic providers can vary the result.
    index: int = 0
    #: Ask for a few words with the picture (a template's character description): a provider
    #: that can answer text and image together returns them as :attr:`GeneratedImage.text`.
    with_text: bool = False


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    mime: str
    width: int | None = None
    height: int | None = None
    #: JSON-able data the provider wants back when this image is used as an input again (to
    #: the same model): the core stores it with the image and passes it as
    #: :attr:`InputImage.continuation`. None when the provider needs nothing.
    continuation: Mapping[str, Any] | None = None
    #: What the model wrote beside the picture, when :attr:`ImageRequest.with_text` asked for
    #: it; None otherwise.
    text: str | None = None

    @property
    def extension(self) -> str:
        found = IMAGE_FORMATS.get(self.mime)
        return "bin" if found is None else found.extension


@dataclass(frozen=True)
class AttemptResult:
    """A successful attempt: the image, and what it is estimated to have cost."""

    image: GeneratedImage
    estimated_cost: Decimal | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KeyCheck:
    """A key check the provider passed: the key is accepted. ``detail`` is for admins (what
    the provider said, e.g. the model's name); it must never contain the key."""

    detail: str
    http_status: int | None = None


class ProviderError(Exception):
    """A failed attempt, classified. The router decides what happens to the key.

    ``message`` is for admins and logs; it must never contain the key.
    """

    outcome: ClassVar[str] = "error"

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


class RateLimit(enum.Enum):
    """Which of the provider's quotas a rate-limit answer (a 429) says was exceeded.

    Providers like Gemini count quotas per project, not per key, so the router cools every key
    of the project; how long depends on the kind.
    """

    #: A per-minute (or shorter) rate: over once ``retry_after`` (or the cooldown) has passed.
    SHORT = "short"
    #: A per-day quota: nothing succeeds again before the provider's daily reset
    #: (:attr:`Provider.quota_day_zone` midnight).
    DAILY = "daily"


class RetryableError(ProviderError):
    """Network error, timeout, provider 5xx or 429: cool the key down and try the next one.

    ``retry_after`` is the provider's own retry delay in seconds, when it gave one;
    ``rate_limit`` is set only when the provider said a quota was exceeded (a 429), and says
    which kind.
    """

    outcome = "retryable"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.retry_after = retry_after
        self.rate_limit = rate_limit


def next_midnight(now: dt.datetime, zone: str) -> dt.datetime:
    """The first midnight in time zone ``zone`` after the aware instant ``now``, in UTC.

    Calendar arithmetic on the local date, so a day of 23 or 25 hours (a daylight-saving
    change) still ends at the local midnight, not 24 hours after the last one.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("next_midnight needs an aware datetime")
    tz = ZoneInfo(zone)
    tomorrow = now.astimezone(tz).date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


class TransportError(RetryableError):
    """The request never got an answer (connect, proxy, read timeout, dropped connection).

    On the proxy path this counts against the proxy and the key is retried directly.
    """


class OutOfFundsError(ProviderError):
    outcome = "out_of_funds"


class KeyRejectedError(ProviderError):
    """Invalid, expired, revoked, leaked or suspended key, or the API is disabled for it."""

    outcome = "key_rejected"


class UserCausedError(ProviderError):
    """The request itself is at fault: the image fails now, and the key is untouched."""

    outcome = "user_caused"
    code: ClassVar[str] = "invalid_input"


class ContentPolicyError(UserCausedError):
    code = "content_policy"


class InvalidInputError(UserCausedError):
    code = "invalid_input"


class NoImageAnswer(InvalidInputError):
    """The model answered without a picture. ``said`` is what it wrote instead ("" for
    nothing): the core shows it to the person, so it must be the model's words only."""

    def __init__(self, message: str, *, said: str = "", http_status: int | None = None) -> None:
        super().__init__(message, http_status=http_status)
        self.said = said


class Provider(abc.ABC):
    """An image provider: one attempt with one key over one path.

    It does no retrying and no key choice: that is the router's job. ``name`` is set by the
    loader to the entry-point name.

    The core calls :meth:`generate` (and the checks) from many threads at once, on one
    instance: anything kept on ``self`` is shared by every call and must be safe to share
    (read-only after ``__init__``, or behind a lock). ``settings`` holds only the plugin's own
    ``<name>.*`` keys and what the contract grants (:mod:`nproxy_core.plugins.contract`).
    """

    name: str = ""
    #: The plugin contract version (``major.minor``) the plugin was written for; the loader
    #: refuses a plugin whose major version differs from the core's ``CONTRACT_VERSION``.
    contract_version: ClassVar[str] = CONTRACT_VERSION
    #: Whether :meth:`check_balance` can read a key's balance.
    supports_balance: ClassVar[bool] = False
    #: The time zone whose midnight resets the provider's daily quotas
    #: (:attr:`RateLimit.DAILY`).
    quota_day_zone: ClassVar[str] = "UTC"
    #: Whether :meth:`check_key` can prove a key is accepted without making an image.
    supports_key_check: ClassVar[bool] = False

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings

    @abc.abstractmethod
    def capabilities(self) -> Sequence[ModelCapabilities]:
        """The models this provider offers; the first is the default."""

    @abc.abstractmethod
    def generate(
        self, request: ImageRequest, *, api_key: str, proxy_url: str | None = None
    ) -> AttemptResult:
        """Make one image, or raise a :class:`ProviderError` subclass."""

    @property
    def attempt_deadline(self) -> float:
        """Outer bound in seconds on one attempt, whatever the transport does."""
        return 180.0

    def check_balance(self, *, api_key: str, proxy_url: str | None = None) -> Decimal | None:
        """The key's balance, or None when it cannot be read."""
        return None

    def check_key(self, *, api_key: str, proxy_url: str | None = None) -> KeyCheck:
        """One free request that proves the key is accepted (an admin's key test).

        Returns a :class:`KeyCheck`, or raises the same :class:`ProviderError` classes as
        :meth:`generate` (a rejected key, no funds, a rate limit, a transport failure). Only
        for providers that set :attr:`supports_key_check`; the router bounds it with
        :attr:`attempt_deadline`.
        """
        raise NotImplementedError(f"provider {self.name!r} offers no key check")

    def check_route(self, *, proxy_url: str | None) -> str:
        """Whether the provider can be reached over this path (a proxy, or direct), without a
        key: a short description of what answered, or :class:`TransportError`.

        The default only proves that a proxy accepts connections; providers that talk HTTP
        override it with a request to their API through the proxy.
        """
        if proxy_url is None:
            return "direct: nothing to check"
        try:
            parts = urlsplit(proxy_url)
            address = (parts.hostname or "", parts.port or 0)
        except ValueError as exc:
            raise TransportError("the proxy URL is malformed") from exc
        try:
            with socket.create_connection(address, timeout=10):
                pass
        except OSError as exc:
            raise TransportError(
                f"the proxy at {address[0]}:{address[1]} refused or did not answer: "
                f"{type(exc).__name__}"
            ) from exc
        return f"the proxy at {address[0]}:{address[1]} accepts connections"

    @property
    def price_per_image(self) -> Decimal | None:
        """The estimated spend of one image (USD), for images whose attempt gave no cost of
        its own; None when unknown."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release pooled connections."""
