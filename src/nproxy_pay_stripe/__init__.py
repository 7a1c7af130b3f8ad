"""nproxy payment plugin for card payments through Stripe (entry point ``stripe``): Checkout
Sessions (a subscription that renews by itself for a plan, one payment for a credit pack),
signed webhooks, reconciliation, cancelling at period end and the billing portal.

It imports only the public plugin interface of the core (``nproxy_core.plugins``).
"""

from nproxy_pay_stripe.processor import StripeProcessor

__all__ = ["StripeProcessor"]
