"""The Telegram Stars processor: invoices in ``XTR`` through the Bot API, payments read from
the bot's updates, refunds.

Telegram tells a bot about a payment in its own updates (``pre_checkout_query``, then a
``message`` with ``successful_payment``), which the bot receives over its authenticated long
poll: :func:`event_from_update` turns such an update into a :class:`PaymentEvent`. An update
handed on over HTTP (``POST /billing/webhooks/stars``, e.g. from a bot running elsewhere) must
carry :data:`SIGNATURE_HEADER`, an HMAC-SHA256 of the body keyed with this plugin's own secret
(:func:`sign_update`): Telegram signs nothing itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from nproxy_core.plugins import (
    CheckoutRequest,
    HostedCheckout,
    PaymentEvent,
    PaymentProcessor,
    PaymentProcessorError,
    PaymentStatus,
    PluginSettingError,
    WebhookRejected,
    api_base,
    positive_seconds,
    setting,
    webhook_header,
)

__all__ = [
    "SIGNATURE_HEADER",
    "StarsProcessor",
    "event_from_update",
    "minor_units",
    "sign_update",
]

DEFAULT_API_BASE = "https://api.telegram.org"
DEFAULT_TIMEOUT_SECONDS = 10.0
#: The header of an update handed on over HTTP: ``sha256=HEX``.
SIGNATURE_HEADER = "x-nproxy-stars-signature"
#: Telegram Stars: whole stars, no smaller unit.
STARS = "XTR"
#: Currencies whose smallest unit is the whole unit (Telegram's ``total_amount`` is in the
#: smallest unit: cents for USD, whole stars for XTR).
_NO_MINOR_UNIT = frozenset({"XTR", "JPY", "KRW", "VND", "CLP", "ISK", "UGX", "PYG", "IDR"})
_PAYLOAD_MAX = 128


def minor_units(currency: str) -> int:
    """Decimal places of ``total_amount`` in ``currency`` (0 for ``XTR``)."""
    return 0 if currency.upper() in _NO_MINOR_UNIT else 2


def _amount(total: Any, currency: str) -> Decimal:
    if isinstance(total, bool) or not isinstance(total, int) or total <= 0:
        raise ValueError("total_amount is not a positive whole number")
    return Decimal(total).scaleb(-minor_units(currency))


def event_from_update(update: Mapping[str, Any]) -> PaymentEvent:
    """The payment a bot update tells about: ``successful_payment`` (finished) or
    ``refunded_payment`` (refunded). Raises ValueError naming what is missing or malformed."""
    if not isinstance(update, Mapping):
        raise ValueError("the update is not an object")
    message = update.get("message")
    if not isinstance(message, Mapping):
        raise ValueError("the update carries no message")
    for key, status in (
        ("successful_payment", PaymentStatus.FINISHED),
        ("refunded_payment", PaymentStatus.REFUNDED),
    ):
        paid = message.get(key)
        if paid is None:
            continue
        if not isinstance(paid, Mapping):
            raise ValueError(f"{key} is not an object")
        currency = paid.get("currency")
        if not isinstance(currency, str) or not currency.strip():
            raise ValueError(f"{key}.currency is missing")
        currency = currency.strip().upper()
        payload = paid.get("invoice_payload")
        if not isinstance(payload, str) or not payload or len(payload.encode()) > _PAYLOAD_MAX:
            raise ValueError(f"{key}.invoice_payload is not 1-128 bytes of text")
        charge = paid.get("telegram_payment_charge_id")
        if not isinstance(charge, str) or not charge.strip():
            raise ValueError(f"{key}.telegram_payment_charge_id is missing")
        try:
            amount = _amount(paid.get("total_amount"), currency)
        except ValueError as exc:
            raise ValueError(f"{key}.{exc}") from None
        return PaymentEvent(
            order_id=payload,
            status=status,
            amount=amount,
            currency=currency,
            payment_id=charge.strip(),
            raw=dict(update),
        )
    raise ValueError("the message carries no successful_payment or refunded_payment")


def sign_update(secret: str, body: bytes) -> str:
    """The :data:`SIGNATURE_HEADER` value for ``body``, keyed with the plugin's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class StarsProcessor(PaymentProcessor):
    """Telegram Stars through the customers' bot.

    Settings: ``stars.bot_token`` (required; the customers' bot, by default
    ``telegram.customer_bot_token``), ``stars.api_base`` (default ``telegram.api_base``, else
    ``https://api.telegram.org``), ``stars.timeout_seconds`` (default 10).
    """

    display_name: ClassVar[str] = "Telegram Stars"
    #: Refunds go back through the processor (``refundStarPayment``).
    refunds: ClassVar[bool] = True
    #: The currency its invoices must be in: the core sells it only what has a Stars price.
    currency: ClassVar[str] = STARS
    charges_stars: ClassVar[bool] = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        token = setting(settings, "stars.bot_token", required=True)
        if ":" not in token or any(c.isspace() for c in token):
            raise PluginSettingError("malformed setting 'stars.bot_token': not a bot token")
        self._base = (
            setting(settings, "stars.api_base", default=DEFAULT_API_BASE, cast=api_base)
            + f"/bot{token}/"
        )
        self._timeout = setting(
            settings,
            "stars.timeout_seconds",
            default=DEFAULT_TIMEOUT_SECONDS,
            cast=positive_seconds,
        )
        self._secret = settings.get("nproxy.secret") or ""
        self._client = httpx.Client(timeout=self._timeout, trust_env=False)

    def close(self) -> None:
        self._client.close()

    # --- the Bot API ---------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, Any]) -> Any:
        """One Bot API call with JSON parameters; its ``result``, or
        :class:`PaymentProcessorError` naming the method and Telegram's description (never
        the token)."""
        try:
            answer = self._client.post(self._base + method, json=dict(params))
        except httpx.HTTPError as exc:
            raise PaymentProcessorError(f"Telegram {method} failed: {type(exc).__name__}") from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PaymentProcessorError(f"Telegram {method} answered HTTP {answer.status_code}")
        if not body.get("ok"):
            description = str(body.get("description") or "no description")[:200]
            raise PaymentProcessorError(
                f"Telegram {method} refused ({body.get('error_code')}): {description}"
            )
        return body.get("result")

    @staticmethod
    def invoice(order_id: str, title: str, description: str, stars: int) -> dict[str, Any]:
        """The fields of a Stars invoice (``sendInvoice`` adds ``chat_id``;
        ``createInvoiceLink`` takes them as they are)."""
        if isinstance(stars, bool) or not isinstance(stars, int) or stars <= 0:
            raise PaymentProcessorError(f"a Stars price must be a whole number above 0: {stars}")
        if not order_id or len(order_id.encode()) > _PAYLOAD_MAX:
            raise PaymentProcessorError("the order id must be 1-128 bytes (the invoice payload)")
        title = (title.strip() or "nproxy")[:32]
        return {
            "title": title,
            "description": (description.strip() or title)[:255],
            "payload": order_id,
            "provider_token": "",
            "currency": STARS,
            "prices": [{"label": title, "amount": stars}],
        }

    def create_checkout(self, checkout: CheckoutRequest) -> HostedCheckout:
        """An invoice link (``createInvoiceLink``) for the order, in whole Stars."""
        if checkout.currency.upper() != STARS:
            raise PaymentProcessorError(
                f"Telegram Stars invoices are in XTR, not {checkout.currency}"
            )
        if checkout.amount != checkout.amount.to_integral_value():
            raise PaymentProcessorError(f"{checkout.amount} is not a whole number of Stars")
        fields = self.invoice(
            checkout.order_id, checkout.description, checkout.description, int(checkout.amount)
        )
        link = self.call("createInvoiceLink", fields)
        if not isinstance(link, str) or not link.startswith(("https://", "http://")):
            raise PaymentProcessorError("Telegram createInvoiceLink answered no link")
        return HostedCheckout(checkout_url=link)

    def send_invoice(self, chat_id: int, fields: Mapping[str, Any]) -> Any:
        """Send the invoice ``fields`` (:meth:`invoice`) to a chat."""
        return self.call("sendInvoice", {"chat_id": chat_id, **fields})

    def answer_pre_checkout_query(
        self, query_id: str, ok: bool, error_message: str | None = None
    ) -> None:
        params: dict[str, Any] = {"pre_checkout_query_id": query_id, "ok": ok}
        if not ok:
            params["error_message"] = (error_message or "This order can no longer be paid.")[:200]
        self.call("answerPreCheckoutQuery", params)

    def refund_payment(self, payment_id: str, customer_id: str | None) -> None:
        """Send the Stars of a payment back: ``payment_id`` is the
        ``telegram_payment_charge_id``, ``customer_id`` the payer's Telegram user id."""
        if not customer_id or not str(customer_id).lstrip("-").isdigit():
            raise PaymentProcessorError("a Stars refund needs the payer's Telegram user id")
        self.call(
            "refundStarPayment",
            {"user_id": int(customer_id), "telegram_payment_charge_id": payment_id},
        )

    # --- notifications -----------------------------------------------------------------

    def payment_event(self, update: Mapping[str, Any]) -> PaymentEvent:
        """The payment an update received by the bot itself tells about (Telegram's long poll
        is authenticated by the token); ValueError names what is wrong with it."""
        return event_from_update(update)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """An update handed on over HTTP, signed with :func:`sign_update`."""
        given = webhook_header(headers, SIGNATURE_HEADER)
        if not self._secret:
            raise WebhookRejected("no secret to verify Stars notifications with")
        if not given:
            raise WebhookRejected(f"missing {SIGNATURE_HEADER} header")
        if not hmac.compare_digest(given.strip(), sign_update(self._secret, body)):
            raise WebhookRejected("signature does not match the body")
        try:
            update = json.loads(body)
            return event_from_update(update)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"not a payment update: {exc}") from None

    @staticmethod
    def customer_of(raw: Mapping[str, Any]) -> str | None:
        """The payer's Telegram user id in a recorded update (``raw`` of a
        :class:`PaymentEvent`), which a refund needs; None when it has none."""
        message = raw.get("message") if isinstance(raw, Mapping) else None
        payer = message.get("from") if isinstance(message, Mapping) else None
        user_id = payer.get("id") if isinstance(payer, Mapping) else None
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            return str(user_id)
        return None

    def fetch_status(self, payment_id: str) -> PaymentEvent:
        raise PaymentProcessorError(
            "Telegram has no status query for one Stars payment: the bot's updates tell it"
        )
