"""A user's payments: all of them, newest first, or one of theirs by its order id."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.billing.models import Payment
from nproxy_core.errors import NotFound
from nproxy_core.i18n import _


def user_payments(db: Session, user_id: int) -> list[Payment]:
    return list(
        db.scalars(
            sa.select(Payment)
            .where(Payment.user_id == user_id)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
        )
    )


def owned_payment(db: Session, user_id: int, order_id: str) -> Payment:
    """The payment with ``order_id`` if ``user_id`` made it; NotFound for anyone else."""
    payment = db.scalar(
        sa.select(Payment).where(Payment.order_id == order_id, Payment.user_id == user_id)
    )
    if payment is None:
        raise NotFound(_("No such payment."))
    return payment
