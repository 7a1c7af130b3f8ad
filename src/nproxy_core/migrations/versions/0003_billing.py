"""billing: payments, payment notifications, billing cycles and quota holds

Revision ID: 0003_billing
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0003_billing"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("processor", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "created",
                "waiting",
                "confirming",
                "confirmed",
                "sending",
                "partially_paid",
                "finished",
                "failed",
                "refunded",
                "expired",
                name="payment_state",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("invoice_id", sa.String(length=128), nullable=True),
        sa.Column("processor_payment_id", sa.String(length=128), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("review_reason", sa.String(length=255), nullable=True),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount_positive")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_payments_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("order_id", name=op.f("uq_payments_order_id")),
    )
    op.create_index(
        op.f("ix_payments_processor_payment_id"), "payments", ["processor_payment_id"], unique=False
    )
    op.create_index(op.f("ix_payments_user_id"), "payments", ["user_id"], unique=False)

    op.create_table(
        "billing_cycles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("period_months", sa.Integer(), nullable=False),
        sa.Column("request_limit", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("warned_3d_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("warned_1d_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("ends_at >= starts_at", name=op.f("ck_billing_cycles_ends_after_start")),
        sa.CheckConstraint(
            "used >= 0 AND reserved >= 0 AND used + reserved <= request_limit",
            name=op.f("ck_billing_cycles_quota_within_limit"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_billing_cycles_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_billing_cycles_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_cycles")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_billing_cycles_payment_id")),
    )
    op.create_index(
        "ix_billing_cycles_user_id_ends_at", "billing_cycles", ["user_id", "ends_at"], unique=False
    )

    op.create_table(
        "payment_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("processor", sa.String(length=64), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "webhook",
                "reconciliation",
                name="notification_source",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("signature_valid", sa.Boolean(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("processor_payment_id", sa.String(length=128), nullable=True),
        sa.Column("raw", nproxy_core.db.JSONType, nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.Column("received_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_payment_notifications_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_notifications")),
    )
    op.create_index(
        op.f("ix_payment_notifications_order_id"),
        "payment_notifications",
        ["order_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_payment_notifications_payment_id"),
        "payment_notifications",
        ["payment_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_payment_notifications_received_at"),
        "payment_notifications",
        ["received_at"],
        unique=False,
    )

    op.create_table(
        "quota_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("consumed", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum("held", "settled", "released", name="hold_state", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "amount > 0 AND consumed >= 0 AND consumed <= amount",
            name=op.f("ck_quota_holds_amounts"),
        ),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["billing_cycles.id"],
            name=op.f("fk_quota_holds_cycle_id_billing_cycles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_holds")),
    )
    op.create_index(op.f("ix_quota_holds_cycle_id"), "quota_holds", ["cycle_id"], unique=False)
    op.create_index(op.f("ix_quota_holds_reference"), "quota_holds", ["reference"], unique=False)
    op.create_index(
        "ix_quota_holds_state_created_at", "quota_holds", ["state", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_quota_holds_state_created_at", table_name="quota_holds")
    op.drop_index(op.f("ix_quota_holds_reference"), table_name="quota_holds")
    op.drop_index(op.f("ix_quota_holds_cycle_id"), table_name="quota_holds")
    op.drop_table("quota_holds")
    op.drop_index(op.f("ix_payment_notifications_received_at"), table_name="payment_notifications")
    op.drop_index(op.f("ix_payment_notifications_payment_id"), table_name="payment_notifications")
    op.drop_index(op.f("ix_payment_notifications_order_id"), table_name="payment_notifications")
    op.drop_table("payment_notifications")
    op.drop_index("ix_billing_cycles_user_id_ends_at", table_name="billing_cycles")
    op.drop_table("billing_cycles")
    op.drop_index(op.f("ix_payments_user_id"), table_name="payments")
    op.drop_index(op.f("ix_payments_processor_payment_id"), table_name="payments")
    op.drop_table("payments")
