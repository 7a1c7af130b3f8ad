"""keypool: provider keys, proxies, attempts and round-robin cursors

Revision ID: 0002_keypool
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0002_keypool"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_cursors",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("last_key_id", sa.Integer(), nullable=True),
        sa.Column("turns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_key_cursors")),
    )
    op.create_table(
        "proxies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column(
            "state",
            sa.Enum("active", "disabled", name="proxy_state", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("total_failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_failure_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_ok_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proxies")),
        sa.UniqueConstraint("url", name=op.f("uq_proxies_url")),
    )
    op.create_table(
        "provider_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("secret_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("secret_mask", sa.String(length=32), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "active",
                "cooldown",
                "out_of_funds",
                "manual_review",
                "disabled",
                name="key_state",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("state_reason", sa.String(length=500), nullable=True),
        sa.Column("cooldown_until", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("billing_group", sa.String(length=100), nullable=True),
        sa.Column("proxy_id", sa.Integer(), nullable=True),
        sa.Column("balance", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("balance_checked_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("estimated_spend", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("last_used_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["proxy_id"],
            ["proxies.id"],
            name=op.f("fk_provider_keys_proxy_id_proxies"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_keys")),
        sa.UniqueConstraint("provider", "secret_fingerprint", name="uq_provider_keys_secret"),
    )
    with op.batch_alter_table("provider_keys", schema=None) as batch_op:
        batch_op.create_index(
            "ix_provider_keys_billing_group", ["provider", "billing_group"], unique=False
        )
        batch_op.create_index("ix_provider_keys_provider_id", ["provider", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_provider_keys_proxy_id"), ["proxy_id"], unique=False)

    op.create_table(
        "key_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column(
            "path",
            sa.Enum("proxy", "direct", name="attempt_path", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("proxy_id", sa.Integer(), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "success",
                "retryable",
                "transport",
                "out_of_funds",
                "key_rejected",
                "user_caused",
                name="attempt_outcome",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("estimated_cost", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("cooldown_until", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("picked_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claim_version", sa.BigInteger(), nullable=False),
        sa.Column("outcome_version", sa.BigInteger(), nullable=True),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["provider_keys.id"],
            name=op.f("fk_key_attempts_key_id_provider_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["proxy_id"],
            ["proxies.id"],
            name=op.f("fk_key_attempts_proxy_id_proxies"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_attempts")),
    )
    with op.batch_alter_table("key_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_key_attempts_key_created", ["key_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_key_attempts_proxy_id"), ["proxy_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_key_attempts_reference"), ["reference"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("key_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_key_attempts_reference"))
        batch_op.drop_index(batch_op.f("ix_key_attempts_proxy_id"))
        batch_op.drop_index("ix_key_attempts_key_created")

    op.drop_table("key_attempts")
    with op.batch_alter_table("provider_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_keys_proxy_id"))
        batch_op.drop_index("ix_provider_keys_provider_id")
        batch_op.drop_index("ix_provider_keys_billing_group")

    op.drop_table("provider_keys")
    op.drop_table("proxies")
    op.drop_table("key_cursors")
