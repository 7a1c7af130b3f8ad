"""The payment processor contract: hosted checkouts and signed payment notifications."""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from nproxy_core.plugins.contract import CONTRACT_VERSION


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
    """A processor's notification or status answer, normalised.

    ``order_id`` is the core's reference (from :class:`CheckoutRequest`); ``invoice_id`` is the
    processor's reference for the checkout it created (what :class:`HostedCheckout` returned:
    checked against the payment when both are known); ``payment_id`` is the processor's
    reference for the money actually sent, learnt from the first notification that carries it
    and passed to :meth:`PaymentProcessor.fetch_status` for reconciliation. A set
    ``parent_payment_id`` (a re-deposit) sends the payment to an admin's review.
    """

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


def webhook_header(headers: Mapping[str, str], name: str) -> str | None:
    """A notification's header by its lower-case ``name``, whether or not ``headers`` folds
    case (WebOb's does, a plain dict does not)."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


class PaymentProcessor(abc.ABC):
    """A payment processor: hosted checkouts, verified notifications, status queries.

    One instance serves every request and worker thread at once: what it keeps on ``self``
    must be safe to share. ``settings`` holds only the plugin's own ``<name>.*`` keys and what
    the contract grants (:mod:`nproxy_core.plugins.contract`). Only
    :attr:`PaymentStatus.FINISHED` activates a payment.
    """

    name: str = ""
    #: The plugin contract version (``major.minor``) the plugin was written for; the loader
    #: refuses a plugin whose major version differs from the core's ``CONTRACT_VERSION``.
    contract_version: ClassVar[str] = CONTRACT_VERSION
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
