"""Checkout: record the payment with our own order id, then ask the processor for an invoice."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from decimal import Decimal

from pyramid.i18n import Localizer
from sqlalchemy.orm import Session

from nproxy_core.billing.models import CreditPack, Payment, PaymentState, Plan
from nproxy_core.i18n import DOMAIN
from nproxy_core.i18n.fields import localized
from nproxy_core.i18n.localizers import catalog_localizer
from nproxy_core.plugins import CheckoutRequest, PaymentProcessor, PaymentProcessorError

log = logging.getLogger(__name__)


def new_order_id() -> str:
    """Our reference for a payment: 144 random bits, URL-safe."""
    return secrets.token_urlsafe(18)


def start_checkout(
    db: Session,
    plan: Plan | CreditPack,
    processor: PaymentProcessor,
    user_id: int,
    *,
    callback_url: str,
    return_urls: Callable[[str], tuple[str, str]],
    customer_email: str | None = None,
    localizer: Localizer | None = None,
) -> Payment:
    """Record a payment for the plan (or credit pack), then ask the processor for a hosted
    checkout, described in the buyer's language (``localizer``'s, English without one).

    The payment keeps the plan's price, units and period (a pack's price, units and validity)
    as they are now: they are what its activation grants, whatever the row says by then.

    The row exists (with its order id) before the processor hears of it, so any notification
    can be matched. If the processor fails, the payment is kept as ``failed`` with no
    ``checkout_url``: should the invoice exist after all (a timeout), a later notification
    still finds its order.
    """
    # A plan that allows it renews by itself with a processor that can (DESIGN 4.16); one
    # renewing subscription at a time, or the user would be charged twice.
    recurring = (
        isinstance(plan, Plan)
        and plan.recurring_allowed
        and bool(getattr(processor, "recurring", False))
    )
    if recurring:
        from nproxy_core.billing.subscriptions import check_can_subscribe

        check_can_subscribe(db, user_id)
    # The price as written (9.99), not as the column pads it (9.99000000): processors echo it.
    price, currency = Decimal(plan.price_text), plan.currency
    # A processor that charges Telegram Stars sells at the Stars price, in XTR (DESIGN 4.14).
    if getattr(processor, "charges_stars", False) and plan.price_stars:
        price, currency = Decimal(plan.price_stars), "XTR"
    payment = Payment(
        order_id=new_order_id(),
        user_id=user_id,
        processor=processor.name,
        amount=price,
        currency=currency,
        status=PaymentState.CREATED,
        **_terms(plan),
    )
    db.add(payment)
    db.flush()
    success_url, cancel_url = return_urls(payment.order_id)
    try:
        hosted = processor.create_checkout(
            CheckoutRequest(
                order_id=payment.order_id,
                amount=price,
                currency=currency,
                description=describe(plan, localizer),
                callback_url=callback_url,
                success_url=success_url,
                cancel_url=cancel_url,
                recurring=recurring,
                period_months=plan.period_months if isinstance(plan, Plan) else 1,
                customer_email=customer_email,
            )
        )
    except PaymentProcessorError as exc:
        log.warning("checkout with %s failed for payment %s: %s", processor.name, payment.id, exc)
        payment.status = PaymentState.FAILED
        return payment
    payment.checkout_url = hosted.checkout_url
    payment.invoice_id = None if hosted.invoice_id is None else str(hosted.invoice_id)[:128]
    payment.status = PaymentState.WAITING
    return payment


def _terms(item: Plan | CreditPack) -> dict[str, int]:
    """What the payment records of the plan or pack it buys, as it is at checkout."""
    if isinstance(item, CreditPack):
        return {
            "pack_id": item.id,
            "pack_units": item.units,
            "pack_valid_months": item.valid_months,
        }
    return {"plan_id": item.id, "plan_units": item.units, "plan_period_months": item.period_months}


def describe(item: Plan | CreditPack, localizer: Localizer | None = None) -> str:
    """The invoice's description, as the processor shows it to the buyer, in ``localizer``'s
    language (English without one): ``nproxy Monthly plan (month)``."""
    localizer = localizer or catalog_localizer(None)
    values: dict[str, object] = {"name": localized(item, "name", localizer)}
    if isinstance(item, CreditPack):
        values["num"] = item.units
        return localizer.pluralize(
            "nproxy ${name} credit pack (${num} unit)",
            "nproxy ${name} credit pack (${num} units)",
            item.units,
            domain=DOMAIN,
            mapping=values,
        )
    values["num"] = item.period_months
    return localizer.pluralize(
        "nproxy ${name} plan (${num} month)",
        "nproxy ${name} plan (${num} months)",
        item.period_months,
        domain=DOMAIN,
        mapping=values,
    )
