"""Telegram for customers: Telegram-only accounts, links, bot settings and deliveries

Revision ID: 0024_customer_bot
Revises: 0023_stars_referrals
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0024_customer_bot"
down_revision = "0023_stars_referrals"
branch_labels = None
depends_on = None

TIME = nproxy_core.db.UTCDateTime(timezone=True)


def _token_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("used_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f(f"fk_{name}_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("token_hash", name=op.f(f"uq_{name}_token_hash")),
    )
    with op.batch_alter_table(name) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{name}_user_id"), ["user_id"], unique=False)


def upgrade() -> None:
    # A Telegram-only account has no email (and a password hash that matches nothing).
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("email", existing_type=sa.String(length=254), nullable=True)
    op.create_table(
        "telegram_customers",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_telegram_customers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_telegram_customers")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_telegram_customers_telegram_id")),
    )
    _token_table("telegram_link_tokens")
    _token_table("telegram_login_tokens")
    op.create_table(
        "telegram_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("status_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", TIME, nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_telegram_deliveries_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_telegram_deliveries_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_deliveries")),
        sa.UniqueConstraint("generation_id", name=op.f("uq_telegram_deliveries_generation_id")),
    )
    with op.batch_alter_table("telegram_deliveries") as batch_op:
        batch_op.create_index(
            "ix_telegram_deliveries_pending", ["sent_at", "chat_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("telegram_deliveries") as batch_op:
        batch_op.drop_index("ix_telegram_deliveries_pending")
    op.drop_table("telegram_deliveries")
    for name in ("telegram_login_tokens", "telegram_link_tokens"):
        with op.batch_alter_table(name) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{name}_user_id"))
        op.drop_table(name)
    op.drop_table("telegram_customers")
    # Telegram-only accounts cannot be kept without an email.
    op.execute("DELETE FROM users WHERE email IS NULL")
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("email", existing_type=sa.String(length=254), nullable=False)
