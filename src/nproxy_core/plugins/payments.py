"""The payment processor contract: hosted checkouts and signed payment notifications."""

from __future__ import annotations

import abc
import datetime as dt
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
    #: Renew by itself every ``period_months`` until cancelled (a plan with
    #: ``recurring_allowed``, bought through a processor with :attr:`PaymentProcessor.recurring`);
    #: False: one payment (a credit pack, or any plan through a processor without renewals).
    recurring: bool = False
    period_months: int = 1
    #: The buyer's email address, for a processor that fills its checkout page with it.
    customer_email: str | None = None


@dataclass(frozen=True)
class HostedCheckout:
    checkout_url: str
    #: The processor's reference for the invoice (e.g. NOWPayments invoice id).
    invoice_id: str | None = None


class EventKind(enum.StrEnum):
    """What a notification is about (processors without renewals send only ``CHECKOUT``).

    ``CHECKOUT``: the payment of the order a checkout created (``order_id``).
    ``RENEWAL``: a renewal invoice of a subscription (``renewal_id`` names it, once per cycle):
    :attr:`PaymentStatus.FINISHED` paid it, :attr:`PaymentStatus.FAILED` failed to charge.
    ``SUBSCRIPTION``: the subscription's own state (renewing, cancelled at period end, ended).
    ``REFUND``: money sent back for a payment named by ``payment_id`` or ``references``
    (``renewal_id`` too when it was a renewal's).
    """

    CHECKOUT = "checkout"
    RENEWAL = "renewal"
    SUBSCRIPTION = "subscription"
    REFUND = "refund"
    #: Anything else the processor sends: recorded, changes nothing.
    OTHER = "other"


@dataclass(frozen=True)
class SubscriptionInfo:
    """A processor's subscription as a notification tells it.

    ``order_id`` is the order of the checkout that started it (the processor keeps it with the
    subscription); ``renews`` is False once it is set to end (cancelled at period end) and
    ``ended`` once it has ended: the core grants no cycle it was not paid for either way.
    """

    subscription_id: str
    customer_id: str | None = None
    order_id: str | None = None
    status: str | None = None
    renews: bool | None = None
    ended: bool = False
    current_period_end: dt.datetime | None = None
    #: The processor's id of the invoice the checkout itself paid: a refund naming it is the
    #: checkout's payment's, not a renewal's.
    initial_invoice_id: str | None = None
    #: When the processor said so: an older state never overrides a newer one.
    as_of: dt.datetime | None = None


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
    #: The rest concerns processors with renewals (:attr:`PaymentProcessor.recurring`).
    kind: EventKind = EventKind.CHECKOUT
    #: The subscription the event is about, if any.
    subscription: SubscriptionInfo | None = None
    #: The renewal invoice's id: a ``RENEWAL`` grants at most one cycle per id.
    renewal_id: str | None = None
    #: Other processor ids of the same money (its charge, its invoice), to find the payment a
    #: ``REFUND`` is about.
    references: tuple[str, ...] = ()
    #: Where the customer can pay (or fix the card of) a failed renewal, if the processor has it.
    pay_url: str | None = None
    #: The processor's id of the notification itself (``evt_...``), for the record.
    event_id: str | None = None


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
    #: The processor renews subscriptions by itself (a capability): recurring checkouts,
    #: ``RENEWAL``/``SUBSCRIPTION`` events, :meth:`cancel_renewal`, :meth:`manage_url` and
    #: :meth:`fetch_subscription`. The core's one renewal path (DESIGN 4.16) serves them all.
    recurring: ClassVar[bool] = False
    #: :meth:`fetch_status` accepts the ``invoice_id`` of :class:`HostedCheckout` (so an open
    #: checkout is reconciled even when no notification ever arrived).
    status_by_invoice_id: ClassVar[bool] = False

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

    # --- renewals (only when :attr:`recurring`) ----------------------------------------------

    def cancel_renewal(self, subscription_id: str) -> SubscriptionInfo:
        """Stop renewing at the end of the paid period (the period runs to its end)."""
        raise PaymentProcessorError(f"{self.name or type(self).__name__} has no renewals")

    def manage_url(self, customer_id: str, return_url: str) -> str:
        """A page of the processor's where the customer manages the subscription (the card,
        invoices, cancelling), coming back to ``return_url``."""
        raise PaymentProcessorError(f"{self.name or type(self).__name__} has no renewals")

    def fetch_subscription(self, subscription_id: str) -> list[PaymentEvent]:
        """For reconciliation: the subscription's state (a ``SUBSCRIPTION`` event) and its
        latest renewal invoice (a ``RENEWAL`` event), if it has one."""
        raise PaymentProcessorError(f"{self.name or type(self).__name__} has no renewals")
