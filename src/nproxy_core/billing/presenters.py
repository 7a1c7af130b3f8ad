"""How billing shows itself in JSON: moments in UTC to the second, and a user's payments."""

from __future__ import annotations

import datetime as dt
from typing import Any

from nproxy_core.billing.models import Payment


def isoformat(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def payment_json(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.order_id,
        "status": str(payment.status),
        "amount": format(payment.amount.normalize(), "f"),
        "currency": payment.currency,
        "created_at": isoformat(payment.created_at),
        "under_review": payment.awaiting_review,
    }
