"""nproxy payment plugin for crypto payments through NOWPayments (entry point ``nowpayments``).

It imports only the public plugin interface of the core (``nproxy_core.plugins``).
"""

from nproxy_pay_crypto.processor import NowPaymentsProcessor

__all__ = ["NowPaymentsProcessor"]
