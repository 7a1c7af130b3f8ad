"""subscriptions: processors that renew by themselves (Stripe)

Revision ID: 0018_subscriptions
Revises: 0017_image_origin

A subscription row per processor subscription (DESIGN 4.16), and on payments the subscription a
payment started or renewed, with one payment per renewal invoice.
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0018_subscriptions"
down_revision = "0017_image_origin"
branch_labels = None
depends_on = None

UTC = nproxy_core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    state = sa.Enum(
        "active",
        "past_due",
        "ending",
        "ended",
        name="subscription_state",
        native_enum=False,
        length=32,
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("processor", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("initial_invoice_id", sa.String(length=128), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(18, 8), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("period_months", sa.Integer(), nullable=False),
        sa.Column("state", state, nullable=False),
        sa.Column("state_at", UTC, nullable=True),
        sa.Column("current_period_end", UTC, nullable=True),
        sa.Column("cancel_requested_at", UTC, nullable=True),
        sa.Column("ended_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_subscriptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_subscriptions_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint(
            "processor", "external_id", name="uq_subscriptions_processor_external_id"
        ),
    )
    op.create_index(op.f("ix_subscriptions_user_id"), "subscriptions", ["user_id"])
    op.create_index(
        "ix_subscriptions_processor_customer_id", "subscriptions", ["processor", "customer_id"]
    )
    with op.batch_alter_table("payments") as batch_op:
        batch_op.add_column(sa.Column("subscription_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_payments_subscription_id_subscriptions"),
            "subscriptions",
            ["subscription_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_unique_constraint(
            "uq_payments_subscription_id_invoice_id", ["subscription_id", "invoice_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_constraint("uq_payments_subscription_id_invoice_id", type_="unique")
        batch_op.drop_constraint(
            batch_op.f("fk_payments_subscription_id_subscriptions"), type_="foreignkey"
        )
        batch_op.drop_column("subscription_id")
    op.drop_index("ix_subscriptions_processor_customer_id", table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_user_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
