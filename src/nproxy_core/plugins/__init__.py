"""The public plugin interface of nproxy: the contract provider and payment plugins implement.

A plugin package imports this module and nothing else from ``nproxy_core``. Providers register
under the ``nproxy.providers`` entry-point group, payment processors under ``nproxy.payments``;
only those named in the settings (``nproxy.providers``, ``nproxy.payments``) are enabled. The
core finds and starts them in :mod:`nproxy_core.plugin_registry`, checking the contract
version each declares and giving each only its own settings (:mod:`.contract`).
:mod:`nproxy_core.plugins.testing` holds the conformance tests a plugin's test suite subclasses.
"""

from __future__ import annotations

from nproxy_core.plugins.contract import (
    CONTRACT_VERSION,
    GRANTED_SETTINGS,
    check_contract,
    parse_version,
    plugin_secret,
    scoped_settings,
)
from nproxy_core.plugins.images import (
    IMAGE_FORMATS,
    IdentifiedImage,
    ImageFormat,
    identify_image,
)
from nproxy_core.plugins.payments import (
    CheckoutRequest,
    HostedCheckout,
    PaymentEvent,
    PaymentProcessor,
    PaymentProcessorError,
    PaymentStatus,
    WebhookRejected,
    webhook_header,
)
from nproxy_core.plugins.providers import (
    AttemptResult,
    ContentPolicyError,
    GeneratedImage,
    ImageRequest,
    InputImage,
    InvalidInputError,
    KeyCheck,
    KeyRejectedError,
    Mode,
    ModelCapabilities,
    OutOfFundsError,
    Provider,
    ProviderError,
    RateLimit,
    RetryableError,
    TransportError,
    UserCausedError,
    next_midnight,
)
from nproxy_core.plugins.settings import (
    PAYMENT_GROUP,
    PROVIDER_GROUP,
    ConfigurationError,
    PluginError,
    PluginSettingError,
    api_base,
    boolean,
    http_url,
    non_negative_int,
    one_of,
    positive_float,
    positive_int,
    positive_seconds,
    price,
    setting,
)

__all__ = [
    "CONTRACT_VERSION",
    "GRANTED_SETTINGS",
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
    "api_base",
    "boolean",
    "check_contract",
    "http_url",
    "identify_image",
    "next_midnight",
    "non_negative_int",
    "one_of",
    "parse_version",
    "plugin_secret",
    "positive_float",
    "positive_int",
    "positive_seconds",
    "price",
    "scoped_settings",
    "setting",
    "webhook_header",
]
