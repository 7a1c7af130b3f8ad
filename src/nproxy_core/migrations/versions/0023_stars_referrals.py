"""Telegram Stars payments and referrals

Revision ID: 0023_stars_referrals
Revises: 0022_admin_indexes
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0023_stars_referrals"
down_revision = "0022_admin_indexes"
branch_labels = None
depends_on = None


def _when(name, nullable=False):
    return sa.Column(name, nproxy_core.db.UTCDateTime(timezone=True), nullable=nullable)


def _user_fk(table, column):
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    # Each Telegram Stars charge once, with the payer a refund needs.
    op.create_table(
        "star_charges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charge_id", sa.String(length=128), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_star_charges_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_star_charges")),
        sa.UniqueConstraint("charge_id", name=op.f("uq_star_charges_charge_id")),
    )
    op.create_index("ix_star_charges_payment_id", "star_charges", ["payment_id"])

    op.create_table(
        "referral_codes",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        _when("created_at"),
        _user_fk("referral_codes", "user_id"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_referral_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_referral_codes_code")),
    )
    op.create_table(
        "referrals",
        sa.Column("referred_id", sa.Integer(), nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        _when("created_at"),
        _user_fk("referrals", "referred_id"),
        _user_fk("referrals", "referrer_id"),
        sa.PrimaryKeyConstraint("referred_id", name=op.f("pk_referrals")),
    )
    op.create_index(
        "ix_referrals_created_at_referred_id", "referrals", ["created_at", "referred_id"]
    )
    op.create_index("ix_referrals_referrer_id", "referrals", ["referrer_id"])
    op.create_table(
        "referral_rewards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=False),
        sa.Column("referred_id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("balance_id", sa.Integer(), nullable=True),
        sa.Column("units", sa.Integer(), nullable=False),
        _when("created_at"),
        _when("clawed_back_at", nullable=True),
        _user_fk("referral_rewards", "referrer_id"),
        _user_fk("referral_rewards", "referred_id"),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_referral_rewards_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["balance_id"],
            ["pack_balances.id"],
            name=op.f("fk_referral_rewards_balance_id_pack_balances"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_rewards")),
        sa.UniqueConstraint("referred_id", name=op.f("uq_referral_rewards_referred_id")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_referral_rewards_payment_id")),
    )
    op.create_index("ix_referral_rewards_referrer_id", "referral_rewards", ["referrer_id"])


def downgrade() -> None:
    op.drop_table("referral_rewards")
    op.drop_table("referrals")
    op.drop_table("referral_codes")
    op.drop_table("star_charges")
