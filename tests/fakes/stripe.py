"""A fake Stripe API (a real HTTP server on :mod:`fakes._server`) and the webhooks it sends.

It speaks Stripe's wire format: form-encoded requests with nested keys
(``line_items[0][price_data][currency]=usd``) and ``Authorization: Bearer sk_...``; JSON objects
with their ``object`` field; errors as ``{"error": {"type", "code", "message", "param"}}``. The
objects follow API version 2024-06-20 (an invoice's ``subscription`` and ``payment_intent`` at
the top, a charge's ``invoice``).

Tests drive what Stripe would do on its side and get back the events it would send::

    with FakeStripe() as fake:                       # secret_key, webhook_secret
        session = fake.sessions[-1]                  # what POST /v1/checkout/sessions made
        events = fake.complete_checkout(session["id"])      # checkout.session.completed, ...
        events += fake.renew(session["subscription"])       # invoice.paid (subscription_cycle)
        body, header = sign_event(event, fake.webhook_secret)   # as Stripe signs it
        deliver(url, event, fake.webhook_secret)             # POST over real HTTP

The signing here is written independently of the plugin's (which uses the ``stripe`` package).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from fakes._server import FakeServer, Reply

__all__ = ["Delivery", "FakeStripe", "RecordedRequest", "deliver", "sign_event", "signature_header"]

API_VERSION = "2024-06-20"
MONTH = 30 * 24 * 3600


def signature_header(
    body: bytes,
    secret: str,
    *,
    timestamp: int | None = None,
    extra_v1: Iterable[str] = (),
    v0: bool = True,
) -> str:
    """``t=...,v1=...`` exactly as Stripe writes it: HMAC-SHA256 of ``"{t}.{body}"`` keyed
    with the endpoint secret, hex. ``extra_v1`` adds more v1 values (Stripe sends one per
    active secret while a secret is being rolled); ``v0`` adds the test-mode scheme's value."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    parts = [f"t={t}", *(f"v1={value}" for value in extra_v1), f"v1={mac}"]
    if v0:
        parts.append("v0=" + "0" * 64)
    return ",".join(parts)


def sign_event(
    event: Mapping[str, Any] | bytes, secret: str, **kwargs: Any
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a webhook as Stripe POSTs it."""
    body = event if isinstance(event, bytes) else json.dumps(event, indent=2).encode()
    return body, {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature_header(body, secret, **kwargs),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }


@dataclass
class Delivery:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def deliver(url: str, event: Mapping[str, Any], secret: str, timeout: float = 30) -> Delivery:
    """POST a signed event to ``url`` over real HTTP; error answers are returned."""
    body, headers = sign_event(event, secret)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as answer:
            return Delivery(answer.status, answer.read())
    except urllib.error.HTTPError as exc:
        return Delivery(exc.code, exc.read())


def decode_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding: ``a[b][0][c]=v`` → ``{"a": {"b": [{"c": "v"}]}}``."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False):
        head, *rest = re.findall(r"[^\[\]]+", key) or [key]
        path = [head, *rest]
        node: Any = root
        for position, part in enumerate(path):
            last = position == len(path) - 1
            nxt = None if last else path[position + 1]
            child_default: Any = [] if (nxt is not None and nxt.isdigit()) else {}
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                if last:
                    node[index] = value
                else:
                    if node[index] is None:
                        node[index] = child_default
                    node = node[index]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, child_default)
    return root


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def form(self) -> dict[str, Any]:
        return decode_form(self.body)


def _error(
    status: int, kind: str, message: str, code: str | None = None, param: str | None = None
) -> Reply:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    error["request_log_url"] = "https://dashboard.stripe.com/test/logs/req_fake"
    return Reply(status, {"error": error}, headers={"request-id": "req_fake"})


class FakeStripe(FakeServer):
    """Stripe's checkout sessions, invoices, subscriptions and billing portal sessions."""

    service: ClassVar[str] = "Stripe"
    behaviours: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        secret_key: str = "sk_test_fake_51Hq2",  # noqa: S107 - a test value
        webhook_secret: str = "whsec_test_fake_Zp9w",  # noqa: S107 - a test value
    ) -> None:
        super().__init__(default="success")
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.objects: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.failures: list[Reply] = []
        self._ids = itertools.count(1)
        # Stripe's clock: every event a second after the one before (their order is known).
        self.clock = int(time.time())

    @property
    def api_base(self) -> str:
        """What to put in ``stripe.api_base``."""
        return self.origin

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test{next(self._ids):06d}{secrets.token_hex(6)}"

    def _tick(self) -> int:
        with self._lock:
            self.clock += 1
            return self.clock

    # --- what tests look at --------------------------------------------------------------------

    @property
    def sessions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [o for o in self.objects.values() if o["object"] == "checkout.session"]

    def get(self, object_id: str) -> dict[str, Any]:
        with self._lock:
            return self.objects[object_id]

    def fail_next(self, reply: Reply) -> None:
        """Answer the next API request with ``reply`` (queue several for several requests)."""
        with self._lock:
            self.failures.append(reply)

    # --- Stripe's side of things -----------------------------------------------------------------

    def _event(self, kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        event = {
            "id": self._id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self._tick(),
            "data": {"object": json.loads(json.dumps(obj))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        with self._lock:
            self.events.append(event)
        return event

    def _charge(
        self,
        amount: int,
        currency: str,
        customer: str,
        invoice: str | None,
        metadata: Mapping[str, Any],
    ) -> dict[str, Any]:
        charge = {
            "id": self._id("ch"),
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "currency": currency,
            "customer": customer,
            "invoice": invoice,
            "metadata": dict(metadata),
            "paid": True,
            "payment_intent": self._id("pi"),
            "refunded": False,
            "status": "succeeded",
            "created": self.clock,
        }
        self.objects[charge["id"]] = charge
        return charge

    def _invoice(self, subscription: dict[str, Any], reason: str, *, paid: bool) -> dict[str, Any]:
        price = subscription["items"]["data"][0]["price"]
        start = subscription["current_period_start"]
        end = subscription["current_period_end"]
        invoice_id = self._id("in")
        charge = (
            self._charge(
                price["unit_amount"], price["currency"], subscription["customer"], invoice_id, {}
            )
            if paid
            else None
        )
        invoice = {
            "id": invoice_id,
            "object": "invoice",
            "amount_due": price["unit_amount"],
            "amount_paid": price["unit_amount"] if paid else 0,
            "amount_remaining": 0 if paid else price["unit_amount"],
            "attempt_count": 1,
            "attempted": True,
            "billing_reason": reason,
            "charge": charge["id"] if charge else None,
            "currency": price["currency"],
            "customer": subscription["customer"],
            "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_fake/{invoice_id}",
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": self._id("il"),
                        "object": "line_item",
                        "amount": price["unit_amount"],
                        "currency": price["currency"],
                        "period": {"start": start, "end": end},
                        "price": price,
                    }
                ],
                "has_more": False,
            },
            "metadata": {},
            "paid": paid,
            "payment_intent": charge["payment_intent"] if charge else self._id("pi"),
            "period_start": start,
            "period_end": end,
            "status": "paid" if paid else "open",
            "subscription": subscription["id"],
            "subscription_details": {"metadata": dict(subscription["metadata"])},
            "total": price["unit_amount"],
            "created": self.clock,
        }
        self.objects[invoice_id] = invoice
        subscription["latest_invoice"] = invoice_id
        return invoice

    def complete_checkout(self, session_id: str, *, paid: bool = True) -> list[dict[str, Any]]:
        """The buyer pays on the hosted page: the events Stripe then sends, in its order."""
        with self._lock:
            session = self.objects[session_id]
            customer = self._id("cus")
            session["customer"] = customer
            session["status"] = "complete"
            session["payment_status"] = "paid" if paid else "unpaid"
            events: list[tuple[str, dict[str, Any]]] = []
            if session["mode"] == "subscription":
                line = session["_line_items"][0]
                data = line["price_data"]
                recurring = data["recurring"]
                months = int(recurring.get("interval_count", 1)) * (
                    12 if recurring["interval"] == "year" else 1
                )
                now = self.clock
                price = {
                    "id": self._id("price"),
                    "object": "price",
                    "currency": data["currency"],
                    "unit_amount": int(data["unit_amount"]),
                    "recurring": {
                        "interval": recurring["interval"],
                        "interval_count": int(recurring.get("interval_count", 1)),
                    },
                    "type": "recurring",
                }
                subscription = {
                    "id": self._id("sub"),
                    "object": "subscription",
                    "cancel_at": None,
                    "cancel_at_period_end": False,
                    "canceled_at": None,
                    "customer": customer,
                    "current_period_start": now,
                    "current_period_end": now + months * MONTH,
                    "items": {
                        "object": "list",
                        "data": [
                            {
                                "id": self._id("si"),
                                "object": "subscription_item",
                                "price": price,
                                "quantity": 1,
                            }
                        ],
                    },
                    "latest_invoice": None,
                    "metadata": dict(session["_subscription_metadata"]),
                    "status": "active" if paid else "incomplete",
                    "_months": months,
                }
                self.objects[subscription["id"]] = subscription
                invoice = self._invoice(subscription, "subscription_create", paid=paid)
                session["subscription"] = subscription["id"]
                session["invoice"] = invoice["id"]
                events.append(("customer.subscription.created", subscription))
                if paid:
                    events.append(("invoice.paid", invoice))
            elif paid:
                charge = self._charge(
                    session["amount_total"],
                    session["currency"],
                    customer,
                    None,
                    session["_payment_metadata"],
                )
                session["payment_intent"] = charge["payment_intent"]
            events.append(("checkout.session.completed", session))
        return [self._event(kind, self._public(obj)) for kind, obj in events]

    def renew(self, subscription_id: str, *, paid: bool = True) -> list[dict[str, Any]]:
        """The period ends: a renewing subscription's next invoice is charged (or fails); one
        set to cancel at period end is deleted instead."""
        with self._lock:
            subscription = self.objects[subscription_id]
            if subscription["status"] == "canceled":
                return []
            if subscription["cancel_at_period_end"]:
                subscription["status"] = "canceled"
                subscription["canceled_at"] = self.clock
                subscription["ended_at"] = subscription["current_period_end"]
                kind, obj = "customer.subscription.deleted", subscription
                events = [(kind, obj)]
            else:
                months = subscription["_months"]
                subscription["current_period_start"] = subscription["current_period_end"]
                subscription["current_period_end"] += months * MONTH
                invoice = self._invoice(subscription, "subscription_cycle", paid=paid)
                if paid:
                    subscription["status"] = "active"
                    events = [("invoice.paid", invoice)]
                else:
                    subscription["status"] = "past_due"
                    events = [
                        ("invoice.payment_failed", invoice),
                        ("customer.subscription.updated", subscription),
                    ]
        return [self._event(kind, self._public(obj)) for kind, obj in events]

    def pay_invoice(self, invoice_id: str) -> list[dict[str, Any]]:
        """The customer fixed the card: the open invoice is paid."""
        with self._lock:
            invoice = self.objects[invoice_id]
            subscription = self.objects[invoice["subscription"]]
            charge = self._charge(
                invoice["amount_due"], invoice["currency"], invoice["customer"], invoice_id, {}
            )
            invoice.update(
                status="paid",
                paid=True,
                amount_paid=invoice["amount_due"],
                amount_remaining=0,
                charge=charge["id"],
                payment_intent=charge["payment_intent"],
            )
            subscription["status"] = "active"
        return [self._event("invoice.paid", self._public(invoice))]

    def refund(self, charge_id: str, amount: int | None = None) -> list[dict[str, Any]]:
        """An admin refunds a charge in the dashboard (all of it unless ``amount``)."""
        with self._lock:
            charge = self.objects[charge_id]
            charge["amount_refunded"] = charge["amount"] if amount is None else amount
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        return [self._event("charge.refunded", self._public(charge))]

    def expire(self, session_id: str) -> list[dict[str, Any]]:
        with self._lock:
            session = self.objects[session_id]
            session["status"] = "expired"
        return [self._event("checkout.session.expired", self._public(session))]

    @staticmethod
    def _public(obj: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # --- HTTP --------------------------------------------------------------------------------

    def length_required(self) -> Reply:
        return _error(411, "invalid_request_error", "Content-Length required")

    def _handle(self, handler: Any, body: bytes) -> None:
        request = RecordedRequest(
            handler.command,
            handler.path,
            {k.lower(): v for k, v in handler.headers.items()},
            body,
        )
        with self._answering(request):
            with self._lock:
                failure = self.failures.pop(0) if self.failures else None
            reply = failure or self._route(request)
            self._send(handler, reply)

    def _route(self, request: RecordedRequest) -> Reply:
        key = request.api_key
        if key != self.secret_key:
            shown = (key or "")[:8] + "*" * 4 + (key or "")[-4:] if key else ""
            return _error(
                401,
                "invalid_request_error",
                f"Invalid API Key provided: {shown}" if key else "You did not provide an API key.",
                code="api_key_invalid" if key else None,
            )
        if request.method == "POST" and not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return _error(400, "invalid_request_error", "Requests must be form-encoded.")
        path = urlsplit(request.path).path
        form = request.form() if request.method == "POST" else {}
        if request.method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(form, request.headers.get("idempotency-key"))
        if request.method == "POST" and path == "/v1/billing_portal/sessions":
            return self._portal(form)
        match = re.fullmatch(r"/v1/(checkout/sessions|invoices|subscriptions)/([^/]+)", path)
        if match:
            kind = {
                "checkout/sessions": "checkout.session",
                "invoices": "invoice",
                "subscriptions": "subscription",
            }[match.group(1)]
            with self._lock:
                obj = self.objects.get(match.group(2))
                if obj is None or obj["object"] != kind:
                    return _error(
                        404,
                        "invalid_request_error",
                        f"No such {kind}: '{match.group(2)}'",
                        code="resource_missing",
                        param="id",
                    )
                if request.method == "POST" and kind == "subscription":
                    return self._update_subscription(obj, form)
                if request.method == "GET":
                    return Reply(200, self._public(obj))
        return _error(
            404, "invalid_request_error", f"Unrecognized request URL ({request.method}: {path})."
        )

    def _create_session(self, form: dict[str, Any], idempotency_key: str | None) -> Reply:
        if idempotency_key:
            with self._lock:
                for obj in self.objects.values():
                    if obj.get("_idempotency_key") == idempotency_key:
                        return Reply(200, self._public(obj))
        mode = form.get("mode")
        if mode not in ("payment", "subscription", "setup"):
            return _error(
                400,
                "invalid_request_error",
                "Invalid mode: must be one of payment, setup, or subscription",
                code="parameter_invalid_empty" if mode is None else "parameter_invalid",
                param="mode",
            )
        for name in ("success_url",):
            if not form.get(name):
                return _error(
                    400,
                    "invalid_request_error",
                    f"Missing required param: {name}.",
                    code="parameter_missing",
                    param=name,
                )
        items = form.get("line_items")
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            return _error(
                400,
                "invalid_request_error",
                "Missing required param: line_items.",
                code="parameter_missing",
                param="line_items",
            )
        data = items[0].get("price_data") or {}
        try:
            amount = int(data.get("unit_amount", ""))
        except ValueError:
            return _error(
                400,
                "invalid_request_error",
                "Invalid integer: unit_amount",
                code="parameter_invalid_integer",
                param="line_items[0][price_data][unit_amount]",
            )
        currency = data.get("currency", "")
        if not re.fullmatch(r"[a-z]{3}", currency):
            return _error(
                400,
                "invalid_request_error",
                f"Invalid currency: {currency}.",
                code="parameter_invalid",
                param="line_items[0][price_data][currency]",
            )
        if not (data.get("product_data") or {}).get("name"):
            return _error(
                400,
                "invalid_request_error",
                "Missing required param: line_items[0][price_data][product_data][name].",
                code="parameter_missing",
                param="line_items[0][price_data][product_data][name]",
            )
        if mode == "subscription" and not (data.get("recurring") or {}).get("interval"):
            return _error(
                400,
                "invalid_request_error",
                "You must specify `recurring` in `price_data` when in `subscription` mode.",
                param="line_items[0][price_data][recurring]",
            )
        if mode == "payment" and data.get("recurring"):
            return _error(
                400,
                "invalid_request_error",
                "You specified `payment` mode but passed a recurring price.",
                param="line_items[0][price_data][recurring]",
            )
        session_id = "cs_test_" + secrets.token_hex(16)
        quantity = int(items[0].get("quantity", "1"))
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": amount * quantity,
            "amount_total": amount * quantity,
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": form.get("client_reference_id"),
            "created": self.clock,
            "currency": currency,
            "customer": None,
            "customer_email": form.get("customer_email"),
            "expires_at": self.clock + 24 * 3600,
            "invoice": None,
            "livemode": False,
            "metadata": form.get("metadata") or {},
            "mode": mode,
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "subscription": None,
            "success_url": form.get("success_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}#fidkdWxOYHwnPyd1blpxYHZxWjA0",
            "_line_items": items,
            "_subscription_metadata": (form.get("subscription_data") or {}).get("metadata") or {},
            "_payment_metadata": (form.get("payment_intent_data") or {}).get("metadata") or {},
            "_idempotency_key": idempotency_key,
        }
        with self._lock:
            self.objects[session_id] = session
        return Reply(200, self._public(session))

    def _portal(self, form: dict[str, Any]) -> Reply:
        customer = form.get("customer")
        with self._lock:
            known = customer in self.objects or any(
                o.get("customer") == customer for o in self.objects.values()
            )
        if not customer or not known:
            return _error(
                400 if not customer else 404,
                "invalid_request_error",
                f"No such customer: '{customer}'"
                if customer
                else "Missing required param: customer.",
                code="resource_missing" if customer else "parameter_missing",
                param="customer",
            )
        portal_id = self._id("bps")
        return Reply(
            200,
            {
                "id": portal_id,
                "object": "billing_portal.session",
                "customer": customer,
                "return_url": form.get("return_url"),
                "url": f"https://billing.stripe.com/p/session/test_{portal_id}",
                "created": self.clock,
                "livemode": False,
            },
        )

    def _update_subscription(self, subscription: dict[str, Any], form: dict[str, Any]) -> Reply:
        value = form.get("cancel_at_period_end")
        if value is not None:
            if value not in ("true", "false"):
                return _error(
                    400,
                    "invalid_request_error",
                    "Invalid boolean: " + value,
                    code="parameter_invalid_boolean",
                    param="cancel_at_period_end",
                )
            if subscription["status"] == "canceled":
                return _error(
                    400,
                    "invalid_request_error",
                    "A canceled subscription can only update its cancellation_details and "
                    "metadata.",
                    param="cancel_at_period_end",
                )
            subscription["cancel_at_period_end"] = value == "true"
            subscription["cancel_at"] = (
                subscription["current_period_end"] if value == "true" else None
            )
        public = self._public(subscription)
        # Stripe tells the webhook too (outside the lock: _event takes it).
        self._pending_update = public
        return Reply(200, public)

    def cancel_at_period_end(self, subscription_id: str) -> list[dict[str, Any]]:
        """The customer cancels in the billing portal: the event Stripe sends."""
        with self._lock:
            subscription = self.objects[subscription_id]
            subscription["cancel_at_period_end"] = True
            subscription["cancel_at"] = subscription["current_period_end"]
            public = self._public(subscription)
        return [self._event("customer.subscription.updated", public)]

    def updates(self) -> list[dict[str, Any]]:
        """The ``customer.subscription.updated`` event of the last API update, as Stripe sends."""
        public = getattr(self, "_pending_update", None)
        if public is None:
            return []
        self._pending_update = None
        return [self._event("customer.subscription.updated", public)]
