"""A user's payments, newest first."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.billing.models import Payment


def user_payments(db: Session, user_id: int) -> list[Payment]:
    return list(
        db.scalars(
            sa.select(Payment)
            .where(Payment.user_id == user_id)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
        )
    )
