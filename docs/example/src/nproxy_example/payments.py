"""Example Pay: hosted checkouts created through the Example API, and signed notifications.

``POST {example.api_base}/checkouts`` (``Authorization: Bearer {example.pay_key}``) answers
``{"id", "url"}``; the buyer pays at ``url``; Example Pay then POSTs JSON ``{"checkout_id",
"order_id", "payment_id", "status", "amount", "currency"}`` to the callback URL with header
``X-Example-Signature``: hex HMAC-SHA256 of the exact body, keyed with
``example.webhook_secret``. ``GET {example.api_base}/payments/{payment_id}`` answers the same
JSON, for reconciliation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from decimal import Decimal, InvalidOperation

from nproxy_core.plugins import (
    HostedCheckout,
    PaymentEvent,
    PaymentProcessor,
    PaymentProcessorError,
    PaymentStatus,
    WebhookRejected,
    http_url,
    setting,
    webhook_header,
)

SIGNATURE_HEADER = "x-example-signature"
#: Example Pay's statuses and what each means to nproxy. Only FINISHED activates a payment.
STATUSES = {
    "pending": PaymentStatus.WAITING,
    "paid": PaymentStatus.FINISHED,
    "underpaid": PaymentStatus.PARTIALLY_PAID,
    "failed": PaymentStatus.FAILED,
    "expired": PaymentStatus.EXPIRED,
    "refunded": PaymentStatus.REFUNDED,
}


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ExampleProcessor(PaymentProcessor):
    contract_version = "1.1"
    display_name = "Example Pay"

    def __init__(self, settings):
        super().__init__(settings)
        self.api_base = setting(settings, "example.api_base", required=True, cast=http_url)
        self.pay_key = setting(settings, "example.pay_key", required=True)
        self.webhook_secret = setting(settings, "example.webhook_secret", required=True)

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict:
        call = urllib.request.Request(  # noqa: S310 - api_base is checked: http(s) only
            f"{self.api_base}{path}",
            data=None if payload is None else json.dumps(payload).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.pay_key}", "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(call, timeout=20) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            raise PaymentProcessorError(f"Example Pay answered {error.code} to {path}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise PaymentProcessorError(f"Example Pay {path}: {type(error).__name__}") from None

    def create_checkout(self, checkout):
        answer = self._call(
            "POST",
            "/checkouts",
            {
                "order_id": checkout.order_id,
                "amount": str(checkout.amount),
                "currency": checkout.currency,
                "description": checkout.description,
                "callback_url": checkout.callback_url,
                "success_url": checkout.success_url,
                "cancel_url": checkout.cancel_url,
            },
        )
        if not isinstance(answer.get("url"), str) or not answer.get("id"):
            raise PaymentProcessorError("Example Pay's checkout answer has no id or url")
        # invoice_id: Example Pay's reference for this checkout, checked on every notification.
        return HostedCheckout(checkout_url=answer["url"], invoice_id=str(answer["id"]))

    def parse_webhook(self, body, headers):
        signature = webhook_header(headers, SIGNATURE_HEADER)
        if not signature:
            raise WebhookRejected(f"missing {SIGNATURE_HEADER} header")
        # Verify the exact bytes before reading anything from them.
        if not hmac.compare_digest(sign(self.webhook_secret, body), signature.strip().lower()):
            raise WebhookRejected(f"bad {SIGNATURE_HEADER} signature")
        try:
            return event(json.loads(body))
        except (ValueError, KeyError, TypeError, InvalidOperation) as error:
            raise WebhookRejected(f"unusable notification: {type(error).__name__}") from None

    def fetch_status(self, payment_id):
        try:
            return event(self._call("GET", f"/payments/{payment_id}"))
        except (KeyError, TypeError, InvalidOperation) as error:
            raise PaymentProcessorError(f"unusable status answer: {error!r}") from None


def event(data: dict) -> PaymentEvent:
    """An Example Pay payment as nproxy's PaymentEvent (KeyError etc. when malformed)."""
    status = STATUSES[data["status"]]
    return PaymentEvent(
        order_id=data.get("order_id"),
        status=status,
        amount=Decimal(str(data["amount"])),
        currency=data.get("currency"),
        # payment_id: the money sent (kept for fetch_status); invoice_id: the checkout.
        payment_id=None if data.get("payment_id") is None else str(data["payment_id"]),
        invoice_id=None if data.get("checkout_id") is None else str(data["checkout_id"]),
        raw=data,
    )
