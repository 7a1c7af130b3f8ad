"""The demo payment processor: a checkout page inside nproxy where a person picks the outcome.

Nothing is charged. The chosen outcome becomes a notification signed with HMAC-SHA256 under a
key derived from ``nproxy.secret`` and goes through the same webhook verification and the same
apply code as a real processor's. Production refuses it unless ``nproxy.allow_demo`` is set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from nproxy_core.plugins import (
    CheckoutRequest,
    HostedCheckout,
    PaymentEvent,
    PaymentProcessor,
    PaymentProcessorError,
    PaymentStatus,
    WebhookRejected,
    setting,
    webhook_header,
)

SIGNATURE_HEADER = "x-demo-signature"
#: The outcomes a person can pick on the demo checkout page, and the status each one sends.
OUTCOMES: dict[str, PaymentStatus] = {
    "paid": PaymentStatus.FINISHED,
    "partially_paid": PaymentStatus.PARTIALLY_PAID,
    "expired": PaymentStatus.EXPIRED,
}
_MAX_BODY = 4096


class DemoProcessor(PaymentProcessor):
    """Checkout without money, for the embedded default and for trying nproxy out."""

    display_name: ClassVar[str] = "Demo (no real money)"
    is_demo: ClassVar[bool] = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        secret = setting(settings, "nproxy.secret", required=True)
        self._public_url = setting(settings, "nproxy.public_url", required=True).rstrip("/")
        # A key of its own, so a demo signature is worth nothing anywhere else.
        self._key = hmac.new(
            secret.encode("utf-8"), b"nproxy demo payment notifications", hashlib.sha256
        ).digest()

    def create_checkout(self, checkout: CheckoutRequest) -> HostedCheckout:
        if not checkout.order_id or "/" in checkout.order_id:
            raise PaymentProcessorError("the demo checkout needs a plain order id")
        return HostedCheckout(
            checkout_url=f"{self._public_url}/billing/demo/checkout/{checkout.order_id}",
            invoice_id=f"demo-{checkout.order_id}",
        )

    def _sign(self, body: bytes) -> str:
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def notification(
        self,
        *,
        order_id: str,
        outcome: str,
        amount: Decimal,
        currency: str,
        invoice_id: str | None,
    ) -> tuple[bytes, dict[str, str]]:
        """The signed body and headers the demo "processor" sends for a chosen outcome."""
        status = OUTCOMES[outcome]
        body = json.dumps(
            {
                "order_id": order_id,
                "status": str(status),
                "amount": format(amount.normalize(), "f"),
                "currency": currency,
                "invoice_id": invoice_id,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode("utf-8")
        return body, {"Content-Type": "application/json", SIGNATURE_HEADER: self._sign(body)}

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        signature = (webhook_header(headers, SIGNATURE_HEADER) or "").strip().lower()
        if not signature:
            raise WebhookRejected(f"missing {SIGNATURE_HEADER} header")
        if len(body) > _MAX_BODY:
            raise WebhookRejected("body too large")
        # Verify the exact bytes before reading anything from them.
        if not signature.isascii() or not hmac.compare_digest(
            self._sign(body).encode("ascii"), signature.encode("ascii")
        ):
            raise WebhookRejected(f"bad {SIGNATURE_HEADER} signature")
        try:
            data = json.loads(body, parse_float=Decimal)
        except ValueError as exc:
            raise WebhookRejected("body is not JSON") from exc
        if not isinstance(data, dict):
            raise WebhookRejected("body is not a JSON object")
        try:
            status = PaymentStatus(data.get("status"))
            amount = Decimal(str(data["amount"]))
        except (KeyError, ValueError, InvalidOperation) as exc:
            raise WebhookRejected("status or amount is missing or malformed") from exc
        fields = {k: data.get(k) for k in ("order_id", "currency", "invoice_id")}
        if not all(v is None or isinstance(v, str) for v in fields.values()):
            raise WebhookRejected("order_id, currency and invoice_id must be strings")
        return PaymentEvent(
            order_id=fields["order_id"],
            status=status,
            amount=amount,
            currency=fields["currency"],
            invoice_id=fields["invoice_id"],
            # No payment id: there is nothing to reconcile against.
            payment_id=None,
            raw={k: str(v) if isinstance(v, Decimal) else v for k, v in data.items()},
        )

    def fetch_status(self, payment_id: str) -> PaymentEvent:
        raise PaymentProcessorError("the demo processor keeps no payments to ask about")
