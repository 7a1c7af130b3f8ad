"""email verification: when an account's address was verified, and the links that verify it

Revision ID: 0015_email_verification
Revises: 0014_plans
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0015_email_verification"
down_revision = "0014_plans"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(
            sa.Column("email_verified_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "email_verification_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_email_verification_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_verification_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_verification_tokens_token_hash")),
    )
    with op.batch_alter_table("email_verification_tokens") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_verification_tokens_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("email_verification_tokens") as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_verification_tokens_user_id"))
    op.drop_table("email_verification_tokens")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("email_verified_at")
