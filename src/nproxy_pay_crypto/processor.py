"""The NOWPayments payment processor: hosted crypto invoices, signed IPNs, status queries."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlsplit

from nproxy_core.plugins import (
    CheckoutRequest,
    HostedCheckout,
    PaymentEvent,
    PaymentProcessor,
    PaymentProcessorError,
    PaymentStatus,
    PluginSettingError,
    WebhookRejected,
    setting,
    webhook_header,
)
from nproxy_pay_crypto.client import NowPaymentsClient
from nproxy_pay_crypto.signature import SIGNATURE_HEADER, signature_matches
from nproxy_pay_crypto.wirejson import JsonNumber, WireJsonError, loads_exact, plain

__all__ = ["NowPaymentsProcessor", "payment_event"]

DEFAULT_API_BASE = "https://api.nowpayments.io/v1"
DEFAULT_TIMEOUT_SECONDS = 15.0


class _UnusablePayment(ValueError):
    """A payment object (IPN or status answer) lacks or garbles a field we rely on."""


def _optional_id(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):  # JsonNumber is a str too: ids arrive as numbers or strings
        return str.__str__(value)
    raise _UnusablePayment(f"{key} is not an id")


def _amount(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _UnusablePayment("price_amount is not a number")
    try:
        amount = Decimal(value.strip())
    except InvalidOperation as exc:
        raise _UnusablePayment(f"price_amount {value!r} is not a number") from exc
    if not amount.is_finite():
        raise _UnusablePayment(f"price_amount {value!r} is not a number")
    return amount


def payment_event(data: Mapping[str, Any]) -> PaymentEvent:
    """Normalise a NOWPayments payment object (parsed with exact numbers).

    Raises :class:`_UnusablePayment`; each caller maps it to its own error class.
    """
    status_text = data.get("payment_status")
    if status_text is None:
        raise _UnusablePayment("payment_status is missing")
    if not isinstance(status_text, str) or isinstance(status_text, JsonNumber):
        raise _UnusablePayment("payment_status is not a string")
    try:
        status = PaymentStatus(status_text)
    except ValueError as exc:
        raise _UnusablePayment(f"unknown payment_status {status_text!r}") from exc

    currency = data.get("price_currency")
    if currency is not None and (not isinstance(currency, str) or isinstance(currency, JsonNumber)):
        raise _UnusablePayment("price_currency is not a string")
    if currency is not None:
        currency = currency.strip().upper() or None

    return PaymentEvent(
        order_id=_optional_id(data, "order_id"),
        status=status,
        amount=_amount(data.get("price_amount")),
        currency=currency,
        payment_id=_optional_id(data, "payment_id"),
        invoice_id=_optional_id(data, "invoice_id"),
        parent_payment_id=_optional_id(data, "parent_payment_id"),
        # Numbers as their exact wire text: JSON-serialisable and nothing rounded.
        raw=plain(dict(data)),
    )


class NowPaymentsProcessor(PaymentProcessor):
    """Crypto payments through NOWPayments hosted invoices."""

    display_name: ClassVar[str] = "Crypto (NOWPayments)"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        api_base = setting(settings, "nowpayments.api_base", default=DEFAULT_API_BASE)
        parts = urlsplit(api_base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PluginSettingError(
                f"malformed setting 'nowpayments.api_base': {api_base!r} is not an http(s) URL"
            )
        api_key = setting(settings, "nowpayments.api_key", required=True)
        self._ipn_secret: str = setting(settings, "nowpayments.ipn_secret", required=True)
        timeout = setting(
            settings, "nowpayments.timeout_seconds", default=DEFAULT_TIMEOUT_SECONDS, cast=float
        )
        if not 0 < timeout <= 600:
            raise PluginSettingError(
                f"malformed setting 'nowpayments.timeout_seconds': {timeout!r} "
                "(expected seconds between 0 and 600)"
            )
        self.client = NowPaymentsClient(api_base, api_key, timeout=timeout)

    def close(self) -> None:
        """Release pooled connections."""
        self.client.close()

    # --- Checkout ---------------------------------------------------------------------------

    def create_checkout(self, checkout: CheckoutRequest) -> HostedCheckout:
        amount = checkout.amount
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
            raise PaymentProcessorError(f"invoice amount must be a positive Decimal: {amount!r}")
        currency = (checkout.currency or "").strip().lower()
        if not currency:
            raise PaymentProcessorError("invoice currency is empty")
        answer = self.client.create_invoice(
            {
                # A Decimal is written as its exact digits ("9.99"), never via float.
                "price_amount": amount,
                "price_currency": currency,
                "order_id": checkout.order_id,
                "order_description": checkout.description,
                "ipn_callback_url": checkout.callback_url,
                "success_url": checkout.success_url,
                "cancel_url": checkout.cancel_url,
            }
        )
        invoice_id = answer.get("id")
        if not isinstance(invoice_id, str) or not invoice_id:  # number or string on the wire
            raise PaymentProcessorError("NOWPayments create invoice: answer has no invoice id")
        invoice_url = answer.get("invoice_url")
        # The user is redirected there: only an absolute http(s) URL will do.
        if (
            not isinstance(invoice_url, str)
            or isinstance(invoice_url, JsonNumber)
            or urlsplit(invoice_url).scheme not in ("http", "https")
            or not urlsplit(invoice_url).netloc
        ):
            raise PaymentProcessorError(
                "NOWPayments create invoice: answer has no usable invoice_url"
            )
        return HostedCheckout(checkout_url=invoice_url, invoice_id=str.__str__(invoice_id))

    # --- Notifications ----------------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        signature = webhook_header(headers, SIGNATURE_HEADER)
        if not signature or not signature.strip():
            raise WebhookRejected(f"missing {SIGNATURE_HEADER} header")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookRejected("body is not UTF-8") from exc
        try:
            payload = loads_exact(text)
        except WireJsonError as exc:
            raise WebhookRejected(f"body is not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise WebhookRejected("body is not a JSON object")
        # Verify before reading any field: nothing from an unsigned body is trusted.
        if not signature_matches(payload, self._ipn_secret, signature):
            raise WebhookRejected(f"bad {SIGNATURE_HEADER} signature")
        try:
            return payment_event(payload)
        except _UnusablePayment as exc:
            raise WebhookRejected(f"unusable notification: {exc}") from exc

    # --- Reconciliation ---------------------------------------------------------------------

    def fetch_status(self, payment_id: str) -> PaymentEvent:
        payment_id = str(payment_id).strip()
        if not payment_id:
            raise PaymentProcessorError("payment id is empty")
        answer = self.client.get_payment(payment_id)
        try:
            event = payment_event(answer)
        except _UnusablePayment as exc:
            raise PaymentProcessorError(f"NOWPayments payment status: {exc}") from exc
        if event.payment_id is not None and event.payment_id != payment_id:
            raise PaymentProcessorError(
                f"NOWPayments payment status: asked for {payment_id}, got {event.payment_id}"
            )
        return event
