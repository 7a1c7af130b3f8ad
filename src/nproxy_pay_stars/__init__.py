"""nproxy payment plugin for Telegram Stars (entry point ``stars``).

Invoices in ``XTR`` made by the customers' bot (``createInvoiceLink``, or the bot's own
``sendInvoice`` with :meth:`StarsProcessor.invoice`), payments learnt from the bot's
``successful_payment`` updates, refunds with ``refundStarPayment``. It imports only the public
plugin interface of the core (``nproxy_core.plugins``).
"""

from nproxy_pay_stars.processor import (
    SIGNATURE_HEADER,
    StarsProcessor,
    event_from_update,
    minor_units,
    sign_update,
)

__all__ = ["SIGNATURE_HEADER", "StarsProcessor", "event_from_update", "minor_units", "sign_update"]
