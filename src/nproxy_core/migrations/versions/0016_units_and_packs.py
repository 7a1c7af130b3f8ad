"""units and packs: unit price overrides, credit packs and their balances, holds in units

Revision ID: 0016_units_and_packs
Revises: 0015_email_verification

Every existing hold keeps working: it was made at one unit per image and lies wholly on its
cycle (``unit_cost`` 1, ``cycle_units`` = ``amount``).
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0016_units_and_packs"
down_revision = "0015_email_verification"
branch_labels = None
depends_on = None

UTC = nproxy_core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "unit_prices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("resolution", sa.String(length=64), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=True),
        sa.CheckConstraint("units > 0", name=op.f("ck_unit_prices_units_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_prices")),
        sa.UniqueConstraint(
            "provider", "model", "resolution", name=op.f("uq_unit_prices_provider_model_resolution")
        ),
    )
    op.create_table(
        "credit_packs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("price", sa.Numeric(18, 8), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("price_stars", sa.Integer(), nullable=True),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("valid_months", sa.Integer(), nullable=False),
        sa.Column("models", nproxy_core.db.JSONType, nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint("price > 0", name=op.f("ck_credit_packs_price_positive")),
        sa.CheckConstraint("units > 0", name=op.f("ck_credit_packs_units_positive")),
        sa.CheckConstraint("valid_months > 0", name=op.f("ck_credit_packs_valid_months_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_packs")),
        sa.UniqueConstraint("code", name=op.f("uq_credit_packs_code")),
    )
    with op.batch_alter_table("payments") as batch_op:
        batch_op.add_column(sa.Column("pack_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pack_units", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pack_valid_months", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_payments_pack_id_credit_packs"), "credit_packs", ["pack_id"], ["id"]
        )
    balance_source = sa.Enum(
        "purchase", "upgrade", "grant", name="balance_source", native_enum=False, length=32
    )
    op.create_table(
        "pack_balances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("pack_id", sa.Integer(), nullable=True),
        sa.Column("source", balance_source, nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("models", nproxy_core.db.JSONType, nullable=False),
        sa.Column("starts_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.CheckConstraint(
            "units > 0 AND used >= 0 AND reserved >= 0 AND used + reserved <= units",
            name=op.f("ck_pack_balances_units_within_balance"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_pack_balances_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pack_id"], ["credit_packs.id"], name=op.f("fk_pack_balances_pack_id_credit_packs")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_pack_balances_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pack_balances")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_pack_balances_payment_id")),
    )
    op.create_index(
        "ix_pack_balances_user_id_expires_at", "pack_balances", ["user_id", "expires_at"]
    )
    with op.batch_alter_table("quota_holds") as batch_op:
        batch_op.alter_column("cycle_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("unit_cost", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(sa.Column("cycle_units", sa.Integer(), nullable=True))
    op.execute("UPDATE quota_holds SET cycle_units = amount")
    with op.batch_alter_table("quota_holds") as batch_op:
        batch_op.alter_column("cycle_units", existing_type=sa.Integer(), nullable=False)
        batch_op.create_check_constraint(
            "parts", "unit_cost > 0 AND cycle_units >= 0 AND cycle_units <= amount"
        )
    op.create_table(
        "quota_hold_packs",
        sa.Column("hold_id", sa.Integer(), nullable=False),
        sa.Column("balance_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("consumed", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "amount > 0 AND consumed >= 0 AND consumed <= amount",
            name=op.f("ck_quota_hold_packs_amounts"),
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"],
            ["quota_holds.id"],
            name=op.f("fk_quota_hold_packs_hold_id_quota_holds"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["balance_id"],
            ["pack_balances.id"],
            name=op.f("fk_quota_hold_packs_balance_id_pack_balances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hold_id", "balance_id", name=op.f("pk_quota_hold_packs")),
    )
    op.create_index(op.f("ix_quota_hold_packs_balance_id"), "quota_hold_packs", ["balance_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_quota_hold_packs_balance_id"), table_name="quota_hold_packs")
    op.drop_table("quota_hold_packs")
    # Holds on packs have no cycle to go back to.
    op.execute("DELETE FROM quota_holds WHERE cycle_id IS NULL")
    with op.batch_alter_table("quota_holds") as batch_op:
        batch_op.drop_constraint("parts", type_="check")
        batch_op.drop_column("cycle_units")
        batch_op.drop_column("unit_cost")
        batch_op.alter_column("cycle_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index("ix_pack_balances_user_id_expires_at", table_name="pack_balances")
    op.drop_table("pack_balances")
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_constraint("fk_payments_pack_id_credit_packs", type_="foreignkey")
        batch_op.drop_column("pack_valid_months")
        batch_op.drop_column("pack_units")
        batch_op.drop_column("pack_id")
    op.drop_table("credit_packs")
    op.drop_table("unit_prices")
