"""indexes the admin's money and attention views need

The overview's Money row (``nproxy_core.admin.money``) reads the last 30 days of finished
payments, the paid cycles running, ending or ended around now, and the paid cycles granted in
the last 30 days; each from an index of its own, partial (only the rows it reads) and covering
on PostgreSQL (the columns it sums or groups by, so the table is not visited).

Revision ID: 0022_admin_indexes
Revises: 0021_templates
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_admin_indexes"
down_revision = "0021_templates"
branch_labels = None
depends_on = None

_FINISHED = "status = 'finished'"
_REFUNDED = "status = 'refunded'"
_PAID = "payment_id IS NOT NULL"


def _where(condition: str) -> dict[str, object]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    # Revenue per day, currency and processor.
    op.create_index(
        "ix_payments_revenue",
        "payments",
        ["created_at"],
        postgresql_include=["currency", "processor", "amount"],
        **_where(_FINISHED),
    )
    # Refunds are few: "not refunded" is checked against this small set.
    op.create_index("ix_payments_refunded", "payments", ["id"], **_where(_REFUNDED))
    # Active subscriptions, expiring in 7 days, churned in 30 days.
    op.create_index(
        "ix_billing_cycles_paid_ends_at",
        "billing_cycles",
        ["ends_at"],
        postgresql_include=["user_id", "starts_at", "plan_id", "payment_id"],
        **_where(_PAID),
    )
    # New and renewed in 30 days: the cycles granted, and whether their user had one before.
    op.create_index(
        "ix_billing_cycles_paid_created_at",
        "billing_cycles",
        ["created_at"],
        postgresql_include=["id", "user_id", "payment_id"],
        **_where(_PAID),
    )
    op.create_index(
        "ix_billing_cycles_paid_user_id", "billing_cycles", ["user_id", "id"], **_where(_PAID)
    )


def downgrade() -> None:
    op.drop_index("ix_billing_cycles_paid_user_id", table_name="billing_cycles")
    op.drop_index("ix_billing_cycles_paid_created_at", table_name="billing_cycles")
    op.drop_index("ix_billing_cycles_paid_ends_at", table_name="billing_cycles")
    op.drop_index("ix_payments_refunded", table_name="payments")
    op.drop_index("ix_payments_revenue", table_name="payments")
