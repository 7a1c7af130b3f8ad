"""The Stripe payment processor: Checkout Sessions, signed webhooks, status queries, and the
renewal capability (cancel at period end, the billing portal, reconciling a subscription).

Calls go through the official ``stripe`` package's :class:`stripe.StripeClient`, pointed at
``stripe.api_base``; every failure becomes a :class:`PaymentProcessorError` naming what failed
and never the secret key.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import stripe
from stripe import _http_client

from nproxy_core.plugins import (
    CheckoutRequest,
    HostedCheckout,
    PaymentEvent,
    PaymentProcessor,
    PaymentProcessorError,
    PluginSettingError,
    SubscriptionInfo,
    WebhookRejected,
    api_base,
    positive_seconds,
    setting,
    webhook_header,
)
from nproxy_pay_stripe.events import (
    UnusableObject,
    event_from_object,
    invoice_event,
    minor_units,
    parse_event,
    session_event,
    subscription_event,
)

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_SECONDS", "StripeProcessor"]

DEFAULT_API_BASE = "https://api.stripe.com"
DEFAULT_TIMEOUT_SECONDS = 20.0
SIGNATURE_HEADER = "stripe-signature"
#: A webhook signed longer ago than this is refused (a replay).
TOLERANCE_SECONDS = 300
_MAX_DETAIL = 300


class _Transport(_http_client.HTTPXClient):
    """The SDK's httpx transport, synchronous, without environment proxies (they must never see
    the secret key) and with our timeout."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout, allow_sync_methods=True)
        if self._client is not None:
            self._client.close()
        self._client = httpx.Client(
            verify=ssl.create_default_context(cafile=stripe.ca_bundle_path), trust_env=False
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _check_url(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise PaymentProcessorError(f"Stripe {what}: answer has no url")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PaymentProcessorError(f"Stripe {what}: answer has no usable url")
    return value


class StripeProcessor(PaymentProcessor):
    """Card payments through Stripe Checkout; plans renew by themselves until cancelled."""

    display_name: ClassVar[str] = "Card (Stripe)"
    recurring: ClassVar[bool] = True
    status_by_invoice_id: ClassVar[bool] = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        base = setting(settings, "stripe.api_base", default=DEFAULT_API_BASE, cast=api_base)
        self._secret_key: str = setting(settings, "stripe.secret_key", required=True)
        if not self._secret_key.startswith(("sk_", "rk_")):
            raise PluginSettingError(
                "malformed setting 'stripe.secret_key': a Stripe secret key starts with sk_ "
                "(or rk_ for a restricted key)"
            )
        self._webhook_secret: str = setting(settings, "stripe.webhook_secret", required=True)
        timeout = setting(
            settings,
            "stripe.timeout_seconds",
            default=DEFAULT_TIMEOUT_SECONDS,
            cast=positive_seconds,
        )
        self._transport = _Transport(timeout)
        self.client = stripe.StripeClient(
            self._secret_key,
            base_addresses={"api": base},
            http_client=self._transport,
            max_network_retries=1,
        )

    def close(self) -> None:
        self._transport.close()

    # --- calls -------------------------------------------------------------------------------

    def _call(self, action: str, call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = call(*args, **kwargs)
        except stripe.StripeError as exc:
            raise PaymentProcessorError(f"Stripe {action}: {self._describe(exc)}") from None
        except Exception as exc:  # an unusable answer the SDK could not read
            raise PaymentProcessorError(
                f"Stripe {action}: unusable answer ({type(exc).__name__})"
            ) from None
        data = answer.to_dict() if hasattr(answer, "to_dict") else answer
        if not isinstance(data, dict):
            raise PaymentProcessorError(f"Stripe {action}: answer is not a JSON object")
        return data

    def _describe(self, exc: stripe.StripeError) -> str:
        status = getattr(exc, "http_status", None)
        error = getattr(exc, "error", None)
        parts = [f"HTTP {status}" if status else type(exc).__name__]
        code = getattr(error, "code", None) if error is not None else None
        message = getattr(error, "message", None) if error is not None else None
        if not message:
            message = getattr(exc, "user_message", None) or str(exc)
            # The SDK's connection errors end with the cause in brackets: that is the news.
            cause = str(exc).rsplit("(", 1)[-1].rstrip(")") if "(" in str(exc) else ""
            message = cause or message
        if code:
            parts.append(str(code))
        if message:
            parts.append(" ".join(str(message).split())[:_MAX_DETAIL])
        return self._scrub(" - ".join(parts))

    def _scrub(self, text: str) -> str:
        for secret in (self._secret_key, self._webhook_secret):
            if secret:
                text = text.replace(secret, "***")
        return text

    # --- checkout ----------------------------------------------------------------------------

    def create_checkout(self, checkout: CheckoutRequest) -> HostedCheckout:
        amount = checkout.amount
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
            raise PaymentProcessorError(f"checkout amount must be a positive Decimal: {amount!r}")
        currency = (checkout.currency or "").strip().lower()
        if len(currency) != 3 or not currency.isalpha():
            raise PaymentProcessorError(f"Stripe needs a three-letter currency, not {currency!r}")
        try:
            unit_amount = minor_units(amount, currency)
        except ValueError as exc:
            raise PaymentProcessorError(str(exc)) from None
        price_data: dict[str, Any] = {
            "currency": currency,
            "unit_amount": unit_amount,
            "product_data": {"name": checkout.description[:250] or "nproxy"},
        }
        metadata = {"order_id": checkout.order_id}
        params: dict[str, Any] = {
            "client_reference_id": checkout.order_id,
            "metadata": metadata,
            "success_url": checkout.success_url,
            "cancel_url": checkout.cancel_url,
            "line_items": [{"price_data": price_data, "quantity": 1}],
        }
        if checkout.recurring:
            months = int(checkout.period_months)
            if months <= 0:
                raise PaymentProcessorError("a subscription needs a period of months")
            price_data["recurring"] = (
                {"interval": "year", "interval_count": months // 12}
                if months % 12 == 0
                else {"interval": "month", "interval_count": months}
            )
            params["mode"] = "subscription"
            # The subscription and every invoice of it carry the order: renewals find it.
            params["subscription_data"] = {"metadata": metadata}
        else:
            params["mode"] = "payment"
            # The charge carries the order: a refund finds its payment.
            params["payment_intent_data"] = {"metadata": metadata}
        if checkout.customer_email:
            params["customer_email"] = checkout.customer_email
        answer = self._call(
            "create checkout session",
            self.client.v1.checkout.sessions.create,
            params,
            {"idempotency_key": f"nproxy-checkout-{checkout.order_id}"},
        )
        session_id = answer.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise PaymentProcessorError("Stripe create checkout session: answer has no id")
        url = _check_url(answer.get("url"), "create checkout session")
        return HostedCheckout(checkout_url=url, invoice_id=session_id)

    # --- notifications -----------------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        signature = webhook_header(headers, SIGNATURE_HEADER)
        if not signature or not signature.strip():
            raise WebhookRejected("missing Stripe-Signature header")
        try:
            stripe.WebhookSignature.verify_header(
                body, signature, self._webhook_secret, tolerance=TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            reason = str(exc).split("\n")[0] or "no signature matches"
            raise WebhookRejected(f"bad Stripe-Signature: {self._scrub(reason)}") from None
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"bad Stripe-Signature header ({type(exc).__name__})") from None
        # Verified: only now is the body read.
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise WebhookRejected("body is not JSON") from None
        try:
            return parse_event(payload)
        except UnusableObject as exc:
            raise WebhookRejected(f"unusable event: {exc}") from None

    # --- status queries ----------------------------------------------------------------------

    def fetch_status(self, payment_id: str) -> PaymentEvent:
        """A Checkout Session (``cs_…``, what :meth:`create_checkout` returned) or an invoice
        (``in_…``); any other id is asked about as a session."""
        payment_id = str(payment_id).strip()
        if not payment_id or "/" in payment_id:
            raise PaymentProcessorError("payment id is empty or malformed")
        if payment_id.startswith("in_"):
            answer = self._call("invoice", self.client.v1.invoices.retrieve, payment_id)
            build: Any = invoice_event
        else:
            answer = self._call(
                "checkout session", self.client.v1.checkout.sessions.retrieve, payment_id
            )
            build = session_event
        try:
            event = build(answer)
        except UnusableObject as exc:
            raise PaymentProcessorError(f"Stripe status of {payment_id}: {exc}") from None
        if event.invoice_id is not None and event.invoice_id != payment_id:
            raise PaymentProcessorError(
                f"Stripe status: asked for {payment_id}, got {event.invoice_id}"
            )
        return event

    # --- renewals ----------------------------------------------------------------------------

    def cancel_renewal(self, subscription_id: str) -> SubscriptionInfo:
        answer = self._call(
            "cancel renewal",
            self.client.v1.subscriptions.update,
            subscription_id,
            {"cancel_at_period_end": True},
        )
        try:
            event = subscription_event(answer)
        except UnusableObject as exc:
            raise PaymentProcessorError(f"Stripe cancel renewal: {exc}") from None
        assert event.subscription is not None
        return event.subscription

    def manage_url(self, customer_id: str, return_url: str) -> str:
        answer = self._call(
            "billing portal",
            self.client.v1.billing_portal.sessions.create,
            {"customer": customer_id, "return_url": return_url},
        )
        return _check_url(answer.get("url"), "billing portal")

    def fetch_subscription(self, subscription_id: str) -> list[PaymentEvent]:
        answer = self._call("subscription", self.client.v1.subscriptions.retrieve, subscription_id)
        try:
            events = [subscription_event(answer)]
            latest = answer.get("latest_invoice")
            if isinstance(latest, Mapping):
                events.append(event_from_object(None, latest))
            elif isinstance(latest, str) and latest:
                invoice = self._call("invoice", self.client.v1.invoices.retrieve, latest)
                events.append(invoice_event(invoice))
        except UnusableObject as exc:
            raise PaymentProcessorError(f"Stripe subscription {subscription_id}: {exc}") from None
        return events
