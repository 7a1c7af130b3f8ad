"""Stripe's objects (events, Checkout Sessions, invoices, subscriptions, charges) as the
normalised :class:`~nproxy_core.plugins.PaymentEvent` of the plugin contract.

Webhooks are rendered in the API version of the endpoint, so fields that moved between
versions are read from either place (an invoice's subscription at the top or under
``parent.subscription_details``; a subscription's period end at the top or on its items).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from nproxy_core.plugins import EventKind, PaymentEvent, PaymentStatus, SubscriptionInfo

__all__ = [
    "UnusableObject",
    "amount_from_minor",
    "event_from_object",
    "minor_units",
    "parse_event",
]

#: Currencies Stripe counts in whole units (no cents), and those it counts in thousandths.
ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
THREE_DECIMAL = frozenset(("BHD", "JOD", "KWD", "OMR", "TND"))

#: The statuses of a Checkout Session event.
SESSION_EVENTS = {
    "checkout.session.async_payment_succeeded": PaymentStatus.FINISHED,
    "checkout.session.async_payment_failed": PaymentStatus.FAILED,
    "checkout.session.expired": PaymentStatus.EXPIRED,
}
INVOICE_EVENTS = {
    "invoice.paid": PaymentStatus.FINISHED,
    "invoice.payment_succeeded": PaymentStatus.FINISHED,
    "invoice.payment_failed": PaymentStatus.FAILED,
}
SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
)
#: Subscription statuses in which it still renews (unless cancelled at period end).
RENEWING = frozenset({"active", "trialing", "past_due"})
ENDED = frozenset({"canceled", "incomplete_expired"})


class UnusableObject(ValueError):
    """An object lacks or garbles a field the plugin relies on."""


def _exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def minor_units(amount: Decimal, currency: str) -> int:
    """``9.99`` USD → ``999``; an amount with more digits than the currency has is refused."""
    scaled = amount.scaleb(_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency.upper()} has more decimals than the currency")
    return int(scaled)


def amount_from_minor(value: Any, currency: str | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnusableObject("an amount is not an integer")
    return Decimal(value).scaleb(-_exponent(currency or "usd"))


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):  # an expanded object: its id
        value = value.get("id")
    if not isinstance(value, str):
        raise UnusableObject(f"{key} is not a string")
    return value


def _moment(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnusableObject("a timestamp is not an integer")
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise UnusableObject("a timestamp is out of range") from exc


def _metadata(data: Mapping[str, Any]) -> Mapping[str, Any]:
    value = data.get("metadata")
    return value if isinstance(value, Mapping) else {}


def _currency(data: Mapping[str, Any]) -> str | None:
    currency = _text(data, "currency")
    return None if currency is None else currency.strip().upper()


def _order_of(data: Mapping[str, Any]) -> str | None:
    order = _metadata(data).get("order_id")
    return order if isinstance(order, str) and order else None


def session_event(session: Mapping[str, Any], event_type: str | None = None) -> PaymentEvent:
    """A Checkout Session (from an event, or as ``GET /v1/checkout/sessions/{id}`` answers)."""
    session_id = _text(session, "id")
    if session_id is None:
        raise UnusableObject("the session has no id")
    reference = _text(session, "client_reference_id")
    meta_order = _order_of(session)
    if reference and meta_order and reference != meta_order:
        raise UnusableObject("client_reference_id and metadata[order_id] disagree")
    if event_type in SESSION_EVENTS:
        status = SESSION_EVENTS[event_type]
    else:
        state, paid = session.get("status"), session.get("payment_status")
        if state == "expired":
            status = PaymentStatus.EXPIRED
        elif state == "complete" and paid in ("paid", "no_payment_required"):
            status = PaymentStatus.FINISHED
        elif state in ("open", "complete", None):
            # Complete but unpaid: a delayed payment method that has not cleared yet.
            status = PaymentStatus.WAITING
        else:
            raise UnusableObject(f"unknown session status {state!r}")
    currency = _currency(session)
    subscription_id = _text(session, "subscription")
    customer = _text(session, "customer")
    order_id = reference or meta_order
    subscription = None
    if subscription_id is not None:
        subscription = SubscriptionInfo(
            subscription_id=subscription_id,
            customer_id=customer,
            order_id=order_id,
            initial_invoice_id=_text(session, "invoice"),
        )
    # The money's own ids (the first invoice of a subscription, or the payment intent), to
    # find the payment a refund is about.
    money = tuple(
        ref for ref in (_text(session, "invoice"), _text(session, "payment_intent")) if ref
    )
    return PaymentEvent(
        order_id=order_id,
        status=status,
        amount=amount_from_minor(session.get("amount_total"), currency),
        currency=currency,
        payment_id=session_id,
        invoice_id=session_id,
        kind=EventKind.CHECKOUT,
        subscription=subscription,
        references=money,
        raw=dict(session),
    )


def _invoice_subscription(invoice: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(subscription id, order id of the checkout that started it) of an invoice."""
    subscription = _text(invoice, "subscription")
    details: Mapping[str, Any] = {}
    parent = invoice.get("parent")
    if isinstance(parent, Mapping) and isinstance(parent.get("subscription_details"), Mapping):
        details = parent["subscription_details"]
        subscription = subscription or _text(details, "subscription")
    legacy = invoice.get("subscription_details")
    if isinstance(legacy, Mapping) and not details:
        details = legacy
    order = _order_of(details) or _order_of(invoice)
    return subscription, order


def _invoice_payment_intent(invoice: Mapping[str, Any]) -> str | None:
    found = _text(invoice, "payment_intent")
    if found:
        return found
    payments = invoice.get("payments")
    data = payments.get("data") if isinstance(payments, Mapping) else None
    for item in data if isinstance(data, list) else []:
        payment = item.get("payment") if isinstance(item, Mapping) else None
        if isinstance(payment, Mapping) and _text(payment, "payment_intent"):
            return _text(payment, "payment_intent")
    return None


def _period_end(invoice: Mapping[str, Any]) -> dt.datetime | None:
    lines = invoice.get("lines")
    data = lines.get("data") if isinstance(lines, Mapping) else None
    ends = [
        _moment(line["period"].get("end"))
        for line in (data if isinstance(data, list) else [])
        if isinstance(line, Mapping) and isinstance(line.get("period"), Mapping)
    ]
    ends = [end for end in ends if end is not None]
    return max(ends) if ends else _moment(invoice.get("period_end"))


def invoice_event(
    invoice: Mapping[str, Any], event_type: str | None = None, as_of: dt.datetime | None = None
) -> PaymentEvent:
    """An invoice: a renewal (``billing_reason=subscription_cycle``), or a subscription's first
    invoice (its checkout activates, this only tells the subscription), or anything else."""
    invoice_id = _text(invoice, "id")
    if invoice_id is None:
        raise UnusableObject("the invoice has no id")
    if event_type in INVOICE_EVENTS:
        status = INVOICE_EVENTS[event_type]
    else:
        state = invoice.get("status")
        status = {
            "paid": PaymentStatus.FINISHED,
            "draft": PaymentStatus.WAITING,
            "void": PaymentStatus.EXPIRED,
            "uncollectible": PaymentStatus.FAILED,
        }.get(state if isinstance(state, str) else "", PaymentStatus.WAITING)
        if state == "open" and isinstance(invoice.get("attempt_count"), int):
            status = PaymentStatus.FAILED if invoice["attempt_count"] > 0 else status
    currency = _currency(invoice)
    paid = status == PaymentStatus.FINISHED
    amount = amount_from_minor(invoice.get("amount_paid" if paid else "amount_due"), currency)
    subscription_id, order_id = _invoice_subscription(invoice)
    reason = invoice.get("billing_reason")
    kind = EventKind.OTHER
    if subscription_id is not None:
        kind = EventKind.RENEWAL if reason == "subscription_cycle" else EventKind.SUBSCRIPTION
    subscription = None
    if subscription_id is not None:
        subscription = SubscriptionInfo(
            subscription_id=subscription_id,
            customer_id=_text(invoice, "customer"),
            order_id=order_id,
            current_period_end=_period_end(invoice) if paid else None,
            initial_invoice_id=invoice_id if reason == "subscription_create" else None,
            as_of=as_of,
        )
    references = tuple(
        ref for ref in (_invoice_payment_intent(invoice), _text(invoice, "charge")) if ref
    )
    pay_url = _text(invoice, "hosted_invoice_url")
    return PaymentEvent(
        order_id=None,
        status=status,
        amount=amount,
        currency=currency,
        payment_id=invoice_id,
        invoice_id=invoice_id,
        kind=kind,
        subscription=subscription,
        renewal_id=invoice_id,
        references=references,
        pay_url=pay_url if pay_url and pay_url.startswith("https://") else None,
        raw=dict(invoice),
    )


def subscription_event(
    subscription: Mapping[str, Any], event_type: str | None = None, as_of: dt.datetime | None = None
) -> PaymentEvent:
    subscription_id = _text(subscription, "id")
    if subscription_id is None:
        raise UnusableObject("the subscription has no id")
    state = subscription.get("status")
    if not isinstance(state, str):
        raise UnusableObject("the subscription has no status")
    ended = event_type == "customer.subscription.deleted" or state in ENDED
    cancelling = bool(subscription.get("cancel_at_period_end")) or (
        subscription.get("cancel_at") is not None
    )
    # Still being paid for the first time (incomplete), or paused: neither renews nor ends.
    renews: bool | None = None
    if ended or cancelling:
        renews = False
    elif state in RENEWING:
        renews = True
    period_end = _moment(subscription.get("current_period_end"))
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, Mapping) else None
    for item in data if isinstance(data, list) else []:
        if isinstance(item, Mapping) and item.get("current_period_end") is not None:
            end = _moment(item["current_period_end"])
            period_end = end if period_end is None or (end and end > period_end) else period_end
    status = (
        PaymentStatus.EXPIRED
        if ended
        else PaymentStatus.FAILED
        if state in ("past_due", "unpaid")
        else PaymentStatus.CONFIRMED
    )
    return PaymentEvent(
        order_id=None,
        status=status,
        amount=None,
        currency=None,
        kind=EventKind.SUBSCRIPTION,
        subscription=SubscriptionInfo(
            subscription_id=subscription_id,
            customer_id=_text(subscription, "customer"),
            order_id=_order_of(subscription),
            status=state,
            renews=renews,
            ended=ended,
            current_period_end=period_end,
            as_of=as_of,
        ),
        raw=dict(subscription),
    )


def charge_event(charge: Mapping[str, Any]) -> PaymentEvent:
    """``charge.refunded``: a whole refund takes the payment back; a part of one is for an
    admin to look at (the status stays paid, the amount disagrees)."""
    charge_id = _text(charge, "id")
    if charge_id is None:
        raise UnusableObject("the charge has no id")
    currency = _currency(charge)
    whole = charge.get("refunded") is True
    amount = amount_from_minor(charge.get("amount"), currency)
    if not whole:
        amount = amount_from_minor(
            (charge.get("amount") or 0) - (charge.get("amount_refunded") or 0), currency
        )
    invoice = _text(charge, "invoice")
    intent = _text(charge, "payment_intent")
    return PaymentEvent(
        order_id=_order_of(charge),
        status=PaymentStatus.REFUNDED if whole else PaymentStatus.FINISHED,
        amount=amount,
        currency=currency,
        payment_id=None,
        kind=EventKind.REFUND,
        renewal_id=invoice,
        # The customer last: the core finds a renewal refunded before its invoice arrived by it.
        references=tuple(
            ref for ref in (invoice, intent, charge_id, _text(charge, "customer")) if ref
        ),
        raw=dict(charge),
    )


def event_from_object(
    event_type: str | None, obj: Mapping[str, Any], as_of: Any = None
) -> PaymentEvent:
    """The normalised event for a Stripe object of an event of ``event_type``."""
    kind = obj.get("object")
    if kind == "checkout.session":
        if (
            event_type == "checkout.session.completed"
            or event_type in SESSION_EVENTS
            or (event_type is None)
        ):
            return session_event(obj, event_type)
    elif kind == "invoice":
        return invoice_event(obj, event_type, as_of)
    elif kind == "subscription":
        return subscription_event(obj, event_type, as_of)
    elif kind == "charge" and event_type == "charge.refunded":
        return charge_event(obj)
    return PaymentEvent(
        order_id=None,
        status=PaymentStatus.WAITING,
        amount=None,
        currency=None,
        kind=EventKind.OTHER,
        raw=dict(obj),
    )


def parse_event(payload: Any) -> PaymentEvent:
    """A verified event body (``{id, type, created, data: {object}}``), normalised."""
    if not isinstance(payload, Mapping):
        raise UnusableObject("the event is not a JSON object")
    event_id, event_type = payload.get("id"), payload.get("type")
    if not isinstance(event_id, str) or not isinstance(event_type, str):
        raise UnusableObject("the event has no id or type")
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        raise UnusableObject("the event has no data.object")
    event = event_from_object(event_type, obj, _moment(payload.get("created")))
    return replace(
        event, event_id=event_id, raw={"id": event_id, "type": event_type, "object": dict(obj)}
    )
