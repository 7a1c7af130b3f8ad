"""Billing views: pricing, checkout, return pages, history, the webhook and the JSON API of
DESIGN section 6. No page or answer here shows a quota count."""

from __future__ import annotations

import logging
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import exception_view_config, view_config

from nproxy_core.accounts.interfaces import ISubscriptionSummary
from nproxy_core.accounts.security import user_view
from nproxy_core.alerts import IAlertNotifier
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import checkout, free, presenters, services, subscriptions
from nproxy_core.billing.activation import is_activated
from nproxy_core.billing.interfaces import IPacks, IPlan, IPlans
from nproxy_core.billing.models import (
    OPEN_STATES,
    NotificationSource,
    Payment,
    PaymentState,
    Resolution,
)
from nproxy_core.billing.packs import balance_of, pack_json, upgrade_leftover
from nproxy_core.billing.plans import default_plan_json, plan_json, sold_by
from nproxy_core.billing.presenters import EXAMPLES
from nproxy_core.config import public_url
from nproxy_core.errors import APIError, ValidationError, error_response
from nproxy_core.i18n import _
from nproxy_core.i18n.fields import localized
from nproxy_core.jsonbody import json_object
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import PaymentProcessor, PaymentProcessorError, WebhookRejected
from nproxy_core.pricing import IUnitPrices
from nproxy_core.ratelimit import client_ip, user_limit

log = logging.getLogger(__name__)

#: Real notifications are a few kilobytes; anything this large is not one.
MAX_WEBHOOK_BYTES = 64 * 1024


def chosen_processor(request: Request, name: Any) -> PaymentProcessor:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(_("Choose a payment method."), fields={"processor": "required"})
    processor = request.find_service(IPlugins).processor(name.strip())
    if processor is None:
        raise ValidationError(
            _(
                "The payment method '${name}' is unknown or not enabled.",
                mapping={"name": name.strip()[:40]},
            ),
            fields={"processor": "unknown"},
        )
    return processor


#: What a checkout's JSON body may hold.
CHECKOUT_FIELDS = ("processor", "plan", "pack")


def checkout_fields(body: Any, *, strict: bool = True) -> tuple[Any, Any, Any]:
    """(processor, plan, pack) of a checkout: a plan or a pack, not both. ``strict`` (the
    JSON API): an unknown field is a ValidationError naming it; a page's form may carry
    other fields (its CSRF token, a button's name)."""
    unknown = [str(k)[:40] for k in body if k not in CHECKOUT_FIELDS] if strict else []
    if unknown:
        raise ValidationError(
            _(
                "Unknown field '${name}': a checkout takes processor and plan or pack.",
                mapping={"name": unknown[0]},
            ),
            fields=dict.fromkeys(unknown, "unknown"),
        )
    plan, pack = body.get("plan"), body.get("pack")
    if plan is not None and pack is not None:
        raise ValidationError(
            _("Name a plan or a pack, not both."), fields={"plan": "invalid", "pack": "invalid"}
        )
    return body.get("processor"), plan, pack


def do_checkout(
    request: Request, processor: PaymentProcessor, plan_code: Any = None, pack_code: Any = None
) -> Payment:
    """Check out ``pack_code``, else ``plan_code`` (the default plan when both are None) with
    ``processor``; one that cannot be bought with it is a ValidationError naming it."""
    if pack_code is not None:
        item: Any = request.find_service(IPacks).to_buy(request.db, pack_code, processor)
    else:
        item = request.find_service(IPlans).to_buy(request.db, plan_code, processor)
    return checkout.start_checkout(
        request.db,
        item,
        processor,
        request.identity.id,
        customer_email=request.identity.email,
        localizer=request.localizer,
        callback_url=public_url(request, "billing.webhook", processor=processor.name),
        return_urls=lambda order_id: (
            public_url(request, "billing.success", order_id=order_id),
            public_url(request, "billing.cancel", order_id=order_id),
        ),
    )


def checkout_failed(request: Request) -> Response:
    # Returned, not raised: the transaction commits and keeps the failed payment's row.
    return error_response(
        request,
        502,
        "payment_unavailable",
        _("The payment provider did not answer. Nothing was charged; please try again shortly."),
    )


def own_payment(request: Request) -> Payment:
    """The payment named in the URL, if it is the logged-in user's; else 404."""
    return services.owned_payment(request.db, request.identity.id, request.matchdict["order_id"])


def payment_label(db: Any, payment: Payment) -> str:
    """The payment's state in words a buyer understands."""
    status = payment.status
    if status == PaymentState.REFUNDED:
        return _("Refunded")
    if is_activated(db, payment):
        return _("Paid")
    if payment.awaiting_review:
        return _("Under review")
    if payment.resolution == Resolution.DISMISSED:
        return _("Closed after review")
    return {
        PaymentState.CREATED: _("Starting"),
        PaymentState.WAITING: _("Waiting for payment"),
        PaymentState.CONFIRMING: _("Confirming"),
        PaymentState.CONFIRMED: _("Confirming"),
        PaymentState.SENDING: _("Confirming"),
        PaymentState.FAILED: _("Failed"),
        PaymentState.EXPIRED: _("Expired"),
    }.get(status, _("Under review"))


def enabled_processors(request: Request) -> list[dict[str, str]]:
    return [
        {"name": name, "display_name": processor.display_name or name}
        for name, processor in request.find_service(IPlugins).payments.items()
    ]


# --- JSON API --------------------------------------------------------------------------------


@view_config(route_name="api.plan", request_method="GET", renderer="json")
def api_plan(request: Request) -> dict[str, Any]:
    """The default plan (``nproxy.plan.default``), as before plans were rows."""
    return default_plan_json(request.find_service(IPlans).default(request.db))


@view_config(route_name="api.plans", request_method="GET", renderer="json")
def api_plans(request: Request) -> dict[str, Any]:
    """The public, active plans: what each costs and buys; never anyone's counts. Names in
    the request's language (``Accept-Language``)."""
    per_image = request.find_service(IUnitPrices).per_image(request.db)
    plans = request.find_service(IPlans).for_sale(request.db)
    return {
        "plans": [
            {**plan_json(plan, per_image), "name": localized(plan, "name", request.localizer)}
            for plan in plans
        ]
    }


@view_config(route_name="api.packs", request_method="GET", renderer="json")
def api_packs(request: Request) -> dict[str, Any]:
    """The public, active credit packs: what each costs and buys."""
    per_image = request.find_service(IUnitPrices).per_image(request.db)
    packs = request.find_service(IPacks).for_sale(request.db)
    return {
        "packs": [
            {**pack_json(pack, per_image), "name": localized(pack, "name", request.localizer)}
            for pack in packs
        ]
    }


@user_view("api.billing.checkout", "POST", "json")
def api_checkout(request: Request) -> Any:
    user_limit(request, "checkouts")
    processor_name, plan_code, pack_code = checkout_fields(json_object(request))
    processor = chosen_processor(request, processor_name)
    payment = do_checkout(request, processor, plan_code, pack_code)
    if payment.checkout_url is None:
        return checkout_failed(request)
    request.response.status = 201
    return {"payment_id": payment.order_id, "checkout_url": payment.checkout_url}


def do_start_free(request: Request, plan_code: Any) -> Any:
    """Start the free plan ``plan_code`` (the only active free one when None) for the user."""
    plan = free.free_plan(request.db, plan_code)
    return free.start_free(
        request.db,
        plan,
        request.identity.id,
        client_ip=client_ip(request),
        limiter=request.find_service(name="ratelimiter"),
    )


@user_view("api.billing.start_free", "POST", "json")
def api_start_free(request: Request) -> dict[str, Any]:
    """One cycle of a free plan: 201 with its dates and bucket, never exact counts."""
    body = json_object(request, empty_ok=True)
    cycle = do_start_free(request, body.get("plan"))
    request.response.status = 201
    return {
        "plan": cycle.plan.code,
        "starts_at": presenters.isoformat(cycle.starts_at),
        "ends_at": presenters.isoformat(cycle.ends_at),
        # A cycle just granted is untouched: all of its quota remains.
        "bucket": 100,
    }


@user_view("api.billing.payments", "GET", "json")
def api_payments(request: Request) -> dict[str, Any]:
    payments = services.user_payments(request.db, request.identity.id)
    return {"payments": [presenters.payment_json(p) for p in payments]}


# --- webhook ---------------------------------------------------------------------------------


@view_config(route_name="billing.webhook", request_method="POST", require_csrf=False)
def webhook(request: Request) -> Response:
    """Verify, record, apply, answer: no call to anyone else, so it answers fast."""
    name = request.matchdict["processor"]
    processor = request.find_service(IPlugins).processor(name)
    if processor is None:
        return error_response(request, 404, "not_found", _("No such payment processor."))
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        return error_response(request, 413, "validation_error", _("The notification is too large."))
    # Verified before anything is written (WebhookRejected: 400), then recorded and applied by
    # the one path every processor shares, renewals included (billing.subscriptions).
    event = processor.parse_webhook(request.body, request.headers)
    outcome = subscriptions.apply(
        request.db,
        request.find_service(IPlan),
        processor.name,
        event,
        source=NotificationSource.WEBHOOK,
        alerts=request.find_service(IAlertNotifier),
        request=request,
    )
    return Response(json_body={"ok": True, "result": outcome.result})


@exception_view_config(WebhookRejected)
def webhook_rejected(exc: WebhookRejected, request: Request) -> Response:
    """A notification that failed verification: 400, and nothing was written for it."""
    processor = (request.matchdict or {}).get("processor")
    log.warning("rejected %s notification from %s: %s", processor, client_ip(request), exc)
    return error_response(request, 400, "validation_error", f"The notification was rejected: {exc}")


# --- pages -----------------------------------------------------------------------------------


@view_config(route_name="pricing", request_method="GET", renderer="billing/pricing.html")
def pricing_page(request: Request) -> dict[str, Any]:
    summary = None
    if request.identity is not None:
        summary = request.find_service(ISubscriptionSummary).summary(request, request.identity)
    plans = request.find_service(IPlans)
    plan = plans.default(request.db)
    providers = request.find_service(IPlugins).providers
    per_image = request.find_service(IUnitPrices).per_image(request.db)
    processors = enabled_processors(request)
    return {
        "plan": plan,
        "plans": [(p, plan_json(p, per_image)) for p in plans.for_sale(request.db)],
        "packs": [
            (pack, pack_json(pack, per_image), _sellers(request, pack, processors))
            for pack in request.find_service(IPacks).for_sale(request.db)
        ],
        # What an image costs in units, model by model (the page's units explainer).
        "unit_prices": request.find_service(IUnitPrices).table(request.db),
        "offer": presenters.month_offer(plan, providers, per_image),
        "examples": EXAMPLES,
        "processors": processors,
        # The payment methods that renew a plan by themselves (DESIGN 4.16).
        "renewing": [
            p["display_name"]
            for p in processors
            if getattr(request.find_service(IPlugins).processor(p["name"]), "recurring", False)
        ],
        "summary": summary,
    }


def _sellers(request: Request, pack: Any, processors: list[dict[str, str]]) -> list[dict[str, str]]:
    """The enabled payment methods that can sell ``pack`` (one charging Telegram Stars only if
    the pack has a Stars price)."""
    plugins = request.find_service(IPlugins)
    return [p for p in processors if sold_by(pack, plugins.processor(p["name"])) is None]


@user_view("billing.checkout", "POST")
def checkout_page(request: Request) -> Response:
    user_limit(request, "checkouts")
    form = {k: v for k, v in request.POST.items() if v != ""}
    processor_name, plan_code, pack_code = checkout_fields(form, strict=False)
    processor = chosen_processor(request, processor_name)
    payment = do_checkout(request, processor, plan_code, pack_code)
    if payment.checkout_url is None:
        return checkout_failed(request)
    return HTTPSeeOther(payment.checkout_url)


@user_view("billing.start_free", "POST")
def start_free_page(request: Request) -> Response:
    """The pricing page's "Start free" button: to the dashboard with a message, or the pricing
    page again with the reason it was refused."""
    try:
        do_start_free(request, request.POST.get("plan") or None)
    except APIError as exc:
        request.tm.doom()
        response = render_to_response(
            "billing/pricing.html",
            {**pricing_page(request), "free_error": exc},
            request=request,
        )
        response.status = exc.status
        response.headers.update(exc.headers)
        return response
    return HTTPSeeOther(request.route_path("dashboard", _query={"done": "free-started"}))


@user_view("billing.history", "GET", "billing/history.html")
def history_page(request: Request) -> dict[str, Any]:
    user = request.identity
    payments = services.user_payments(request.db, user.id)
    return {
        "payments": [(p, payment_label(request.db, p)) for p in payments],
        # Every processor's payments, named as people know them ("Card (Stripe)").
        "methods": {
            name: processor.display_name or name
            for name, processor in request.find_service(IPlugins).payments.items()
        },
        **request.find_service(ISubscriptionSummary).summary(request, user),
    }


def _return_page(request: Request, cancelled: bool) -> dict[str, Any]:
    payment = own_payment(request)
    pending = payment.status in OPEN_STATES and not payment.needs_review
    return {
        "payment": payment,
        "label": payment_label(request.db, payment),
        "pending": pending,
        "cancelled": cancelled,
        "cycle": payment.cycle,
        "balance": None if payment.pack_id is None else balance_of(request.db, payment),
        "leftover": upgrade_leftover(request.db, payment),
        **request.find_service(ISubscriptionSummary).summary(request, request.identity),
    }


@user_view("billing.success", "GET", "billing/return.html")
def success_page(request: Request) -> dict[str, Any]:
    return _return_page(request, cancelled=False)


@user_view("billing.cancel", "GET", "billing/return.html")
def cancel_page(request: Request) -> dict[str, Any]:
    return _return_page(request, cancelled=True)


# --- subscriptions that renew by themselves (DESIGN 4.16) ------------------------------------


def current_subscription(request: Request) -> dict[str, Any] | None:
    """``request.subscription``: the logged-in user's subscription as the account page shows
    it (plan, renews on or ends on, what can be done), or None."""
    if request.identity is None:
        return None
    return subscriptions.subscription_view(
        request.db,
        request.identity.id,
        request.find_service(IPlugins).payments,
        localizer=request.localizer,
    )


def _subscription_json(request: Request) -> dict[str, Any]:
    return {"subscription": current_subscription(request)}


def _dashboard(request: Request, done: str) -> HTTPSeeOther:
    return HTTPSeeOther(
        request.route_path("dashboard", _query={"done": done}, _anchor="subscription")
    )


def _cancel(request: Request) -> None:
    subscriptions.cancel_renewal(
        request.db,
        request.identity,
        request.find_service(IPlugins).payments,
        Actor.of_user(request.identity, Surface.WEB),
    )


@user_view("api.billing.subscription", "GET", "json")
def api_subscription(request: Request) -> dict[str, Any]:
    """``{"subscription": null | {plan, state, renews_on, ends_on, ...}}``."""
    return _subscription_json(request)


@user_view("api.billing.subscription.cancel", "POST", "json")
def api_cancel_renewal(request: Request) -> Any:
    """Cancel at period end: the paid cycle runs to its end, nothing more is charged."""
    json_object(request, empty_ok=True)
    try:
        _cancel(request)
    except PaymentProcessorError as exc:
        log.warning("cancelling a renewal failed for user %s: %s", request.identity.id, exc)
        request.tm.doom()
        return error_response(
            request,
            502,
            "payment_unavailable",
            _(
                "The payment provider did not answer. Your subscription was not changed; "
                "please try again shortly."
            ),
        )
    return _subscription_json(request)


def _manage_url(request: Request) -> str:
    """The processor's billing portal for the user, coming back to the account page."""
    return subscriptions.manage_url(
        request.db,
        request.identity,
        request.find_service(IPlugins).payments,
        public_url(request, "dashboard"),
    )


@user_view("api.billing.subscription.portal", "POST", "json")
def api_manage_subscription(request: Request) -> Any:
    """``{"url"}``: the processor's page where the user manages the card and invoices."""
    json_object(request, empty_ok=True)
    try:
        url = _manage_url(request)
    except PaymentProcessorError as exc:
        log.warning("billing portal failed for user %s: %s", request.identity.id, exc)
        return error_response(
            request,
            502,
            "payment_unavailable",
            _("The payment provider did not answer; please try again shortly."),
        )
    return {"url": url}


@user_view("billing.subscription.cancel", "POST")
def cancel_renewal_page(request: Request) -> Response:
    """The account page's "Cancel renewal": back to the page with what happened."""
    try:
        _cancel(request)
    except APIError as exc:
        request.tm.doom()
        return _dashboard(request, "renewal-none" if exc.status == 404 else "renewal-unchanged")
    except PaymentProcessorError as exc:
        log.warning("cancelling a renewal failed for user %s: %s", request.identity.id, exc)
        request.tm.doom()
        return _dashboard(request, "renewal-failed")
    return _dashboard(request, "renewal-cancelled")


@user_view("billing.subscription.manage", "POST")
def manage_subscription_page(request: Request) -> Response:
    """The account page's "Manage subscription": to the processor's billing portal."""
    try:
        url = _manage_url(request)
    except (APIError, PaymentProcessorError) as exc:
        log.warning("billing portal failed for user %s: %s", request.identity.id, exc)
        return _dashboard(request, "manage-failed")
    return HTTPSeeOther(url)
