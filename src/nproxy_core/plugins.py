"""The public plugin interface of nproxy: the contract provider and payment plugins implement.

A plugin package imports this module and nothing else from ``nproxy_core``. Providers register
under the ``nproxy.providers`` entry-point group, payment processors under ``nproxy.payments``;
only those named in the settings (``nproxy.providers``, ``nproxy.payments``) are enabled. The
core finds and starts them in :mod:`nproxy_core.plugin_registry`.
"""

from __future__ import annotations

import abc
import datetime as dt
import enum
import io
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

# The plugin modules are imported for the formats they register with Pillow: identify_image
# reads those registrations, and importing four modules beats Image.init() importing forty.
from PIL import GifImagePlugin, Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin  # noqa: F401

__all__ = [
    "IMAGE_FORMATS",
    "PAYMENT_GROUP",
    "PROVIDER_GROUP",
    "AttemptResult",
    "CheckoutRequest",
    "ConfigurationError",
    "ContentPolicyError",
    "GeneratedImage",
    "HostedCheckout",
    "IdentifiedImage",
    "ImageFormat",
    "ImageRequest",
    "InputImage",
    "InvalidInputError",
    "KeyCheck",
    "KeyRejectedError",
    "Mode",
    "ModelCapabilities",
    "OutOfFundsError",
    "PaymentEvent",
    "PaymentProcessor",
    "PaymentProcessorError",
    "PaymentStatus",
    "PluginError",
    "PluginSettingError",
    "Provider",
    "ProviderError",
    "RateLimit",
    "RetryableError",
    "TransportError",
    "UserCausedError",
    "WebhookRejected",
    "boolean",
    "http_url",
    "identify_image",
    "next_midnight",
    "one_of",
    "positive_float",
    "positive_int",
    "setting",
]

PROVIDER_GROUP = "nproxy.providers"
PAYMENT_GROUP = "nproxy.payments"


class ConfigurationError(Exception):
    """A missing or malformed setting, or a plugin that cannot start: start-up stops with this
    one line, which names what is wrong."""


class PluginError(ConfigurationError):
    """A plugin is unknown, broken, duplicated or misconfigured; start-up stops."""


class PluginSettingError(PluginError):
    """A setting is missing or malformed. The message names the setting."""


def setting(
    settings: Mapping[str, Any],
    name: str,
    *,
    default: Any = None,
    cast: Any = str,
    required: bool = False,
) -> Any:
    """Read one plugin setting, failing with a message that names it."""
    raw = settings.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise PluginSettingError(f"missing required setting {name!r}")
        return default
    try:
        return cast(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise PluginSettingError(f"malformed setting {name!r}: {raw!r}") from exc


# Casts for :func:`setting`: each raises ValueError, which ``setting`` turns into a message
# naming the setting.


def positive_int(value: Any) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


def non_negative_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


def positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0:  # also refuses NaN
        raise ValueError(value)
    return number


def http_url(value: Any) -> str:
    """An absolute http(s) URL, without a trailing slash."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(value)
    return value.rstrip("/")


def boolean(value: Any) -> bool:
    """``true/yes/on/1`` (as Pyramid's ``asbool``) or ``false/no/off/0``; anything else is
    malformed."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "yes", "y", "on", "1"):
        return True
    if text in ("false", "f", "no", "n", "off", "0"):
        return False
    raise ValueError(value)


def one_of(*choices: str) -> Any:
    """A cast accepting only ``choices``."""

    def cast(value: Any) -> str:
        if value not in choices:
            raise ValueError(value)
        return value

    return cast


# --- Images -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFormat:
    """An image format nproxy accepts: Pillow's name for it, its file extension, its usual name."""

    pillow: str
    extension: str
    label: str


#: By MIME type, the formats uploads accept, providers are given and generated images are
#: stored in.
IMAGE_FORMATS: dict[str, ImageFormat] = {
    "image/png": ImageFormat(pillow="PNG", extension="png", label="PNG"),
    "image/jpeg": ImageFormat(pillow="JPEG", extension="jpg", label="JPEG"),
    "image/webp": ImageFormat(pillow="WEBP", extension="webp", label="WebP"),
}

# GIF is recognised but not accepted: a provider that answers with a GIF has sent a well-formed
# image the core then refuses, which is not the fault of the key or the network.
_RECOGNISED = (*(f.pillow for f in IMAGE_FORMATS.values()), "GIF")


@dataclass(frozen=True)
class IdentifiedImage:
    """What the bytes say an image is; no size when its header cannot be read."""

    mime: str
    width: int | None = None
    height: int | None = None


def identify_image(data: bytes) -> IdentifiedImage | None:
    """The type of image ``data`` is, by its content, with its size; None if it is no image.

    Pillow decides, from its own signature check and then the header: no pixel is decoded.
    Bytes that carry a known signature but whose header Pillow cannot read (truncated, damaged,
    or a decompression bomb it refuses to size) keep their type without a size, so a caller
    can say which kind of file is broken. Pillow's pixel limit warning is left alone: turning it
    into an error would change process-wide warning filters, which is not thread-safe.
    """
    prefix = data[:16]
    # Pillow's registered signature checks; one that returns a string (support missing) is a no.
    name = next((n for n in _RECOGNISED if Image.OPEN[n][1](prefix) is True), None)
    if name is None:
        return None
    mime = Image.MIME[name]
    try:
        with Image.open(io.BytesIO(data), formats=[name]) as image:
            width, height = image.size
    except Exception:
        # Pillow reports an unreadable header with many exception types (OSError, SyntaxError,
        # struct.error, DecompressionBombError, ...); all mean "no size".
        return IdentifiedImage(mime)
    return IdentifiedImage(mime, width, height)


# --- Providers --------------------------------------------------------------------------------


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

    def as_dict(self, provider: str) -> dict[str, Any]:
        return {
            "provider": provider,
            "model": self.model,
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


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    mime: str
    width: int | None = None
    height: int | None = None

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


class Provider(abc.ABC):
    """An image provider: one attempt with one key over one path.

    It does no retrying and no key choice: that is the router's job. ``name`` is set by the
    loader to the entry-point name.
    """

    name: str = ""
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


# --- Payments ---------------------------------------------------------------------------------


class PaymentStatus(enum.StrEnum):
    WAITING = "waiting"
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"
    SENDING = "sending"
    PARTIALLY_PAID = "partially_paid"
    FINISHED = "finished"
    FAILED = "failed"
    REFUNDED = "refunded"
    EXPIRED = "expired"


@dataclass(frozen=True)
class CheckoutRequest:
    """What the core asks a processor to invoice. ``order_id`` is the core's own reference."""

    order_id: str
    amount: Decimal
    currency: str
    description: str
    callback_url: str
    success_url: str
    cancel_url: str


@dataclass(frozen=True)
class HostedCheckout:
    checkout_url: str
    #: The processor's reference for the invoice (e.g. NOWPayments invoice id).
    invoice_id: str | None = None


@dataclass(frozen=True)
class PaymentEvent:
    """A processor's notification or status answer, normalised."""

    order_id: str | None
    status: PaymentStatus
    amount: Decimal | None
    currency: str | None
    payment_id: str | None = None
    invoice_id: str | None = None
    parent_payment_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


class PaymentProcessorError(Exception):
    """The processor could not be reached or answered something unusable."""


class WebhookRejected(Exception):
    """A notification failed verification (unsigned, forged, malformed): answer 4xx."""


class PaymentProcessor(abc.ABC):
    name: str = ""
    display_name: ClassVar[str] = ""
    #: Demo processors are refused in production unless a setting allows them.
    is_demo: ClassVar[bool] = False

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings

    @abc.abstractmethod
    def create_checkout(self, checkout: CheckoutRequest) -> HostedCheckout:
        """Create a hosted invoice and return where to send the user."""

    @abc.abstractmethod
    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """Verify and parse a notification, or raise :class:`WebhookRejected`."""

    @abc.abstractmethod
    def fetch_status(self, payment_id: str) -> PaymentEvent:
        """The processor's current view of a payment, for reconciliation."""
