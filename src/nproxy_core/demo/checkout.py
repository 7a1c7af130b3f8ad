"""The demo processor's hosted checkout, served by nproxy itself: the payment's owner picks
what the "payment" does, and the choice arrives as a signed notification."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response

from nproxy_core.accounts.security import user_view
from nproxy_core.alerts import IAlertNotifier
from nproxy_core.billing import notifications
from nproxy_core.billing.interfaces import IPlan
from nproxy_core.billing.models import OPEN_STATES
from nproxy_core.billing.views import own_payment, payment_label
from nproxy_core.demo.payments import OUTCOMES, DemoProcessor
from nproxy_core.errors import NotFound
from nproxy_core.i18n import _
from nproxy_core.plugin_registry import IPlugins


@user_view("demo.checkout", ("GET", "POST"))
def demo_checkout_page(request: Request) -> Response:
    payment = own_payment(request)
    processor = request.find_service(IPlugins).processor(payment.processor)
    if not isinstance(processor, DemoProcessor):
        raise NotFound(_("No such payment."))
    error = None
    if request.method == "POST":
        outcome = request.POST.get("outcome")
        if outcome in OUTCOMES:
            # Signed like a processor's notification and verified and applied by the same
            # code as the webhook.
            body, headers = processor.notification(
                order_id=payment.order_id,
                outcome=outcome,
                amount=payment.amount,
                currency=payment.currency,
                invoice_id=payment.invoice_id,
            )
            notifications.receive_notification(
                request.db,
                request.find_service(IPlan),
                processor,
                body,
                headers,
                alerts=request.find_service(IAlertNotifier),
            )
            target = "billing.cancel" if outcome == "expired" else "billing.success"
            return HTTPSeeOther(request.route_url(target, order_id=payment.order_id))
        error = _("Choose one of the outcomes below.")
        request.response.status = 400
    return render_to_response(
        "demo/checkout.html",
        {
            "payment": payment,
            "open": payment.status in OPEN_STATES,
            "state": payment_label(request.db, payment),
            "plan": payment.plan or request.find_service(IPlan),
            "error": error,
        },
        request=request,
        response=request.response,
    )
