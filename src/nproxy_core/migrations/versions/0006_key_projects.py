"""admin: key projects, key-test and per-image attempts, payment review decisions, worker
heartbeats, hourly summaries of attempts and images, and the indexes the admin pages read by

Revision ID: 0006_key_projects
Revises: 0005_generation
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0006_key_projects"
down_revision = "0005_generation"
branch_labels = None
depends_on = None

_REVIEW_QUEUE = "needs_review AND resolved_at IS NULL"
_UNMATCHED = "payment_id IS NULL AND needs_review AND resolved_at IS NULL"


def upgrade() -> None:
    # Key pool: the provider-side project of a key, and which image of a batch an attempt was.
    op.add_column("provider_keys", sa.Column("project", sa.String(length=100), nullable=True))
    op.create_index("ix_provider_keys_project", "provider_keys", ["provider", "project"])
    op.add_column("key_attempts", sa.Column("image_index", sa.SmallInteger(), nullable=True))
    op.create_index(
        "ix_key_attempts_created_at",
        "key_attempts",
        ["created_at"],
        postgresql_include=["key_id", "outcome", "latency_ms"],
    )

    # Billing: an admin's decision on a flagged payment, or on a notification for no payment;
    # the reason of a cycle granted free.
    op.add_column(
        "payments",
        sa.Column("resolved_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "payments",
        sa.Column(
            "resolution",
            sa.Enum("activated", "dismissed", name="resolution", native_enum=False, length=32),
            nullable=True,
        ),
    )
    op.add_column("payments", sa.Column("resolution_note", sa.String(length=1000), nullable=True))
    op.add_column("payments", sa.Column("resolved_by", sa.String(length=320), nullable=True))
    op.create_index("ix_payments_created_at_id", "payments", ["created_at", "id"])
    op.create_index(
        "ix_payments_awaiting_review",
        "payments",
        ["created_at", "id"],
        postgresql_where=sa.text(_REVIEW_QUEUE),
        sqlite_where=sa.text(_REVIEW_QUEUE),
    )
    op.add_column(
        "payment_notifications",
        sa.Column("resolved_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "payment_notifications",
        sa.Column("resolution_note", sa.String(length=1000), nullable=True),
    )
    op.add_column(
        "payment_notifications", sa.Column("resolved_by", sa.String(length=320), nullable=True)
    )
    op.create_index(
        "ix_payment_notifications_unmatched",
        "payment_notifications",
        ["received_at"],
        postgresql_where=sa.text(_UNMATCHED),
        sqlite_where=sa.text(_UNMATCHED),
    )
    op.add_column("billing_cycles", sa.Column("grant_reason", sa.String(length=500), nullable=True))

    # Generations: the admin's job list by time, status, user and provider; images per hour.
    op.create_index("ix_generations_created_at_id", "generations", ["created_at", "id"])
    op.create_index(
        "ix_generations_status_created_at_id", "generations", ["status", "created_at", "id"]
    )
    op.create_index(
        "ix_generations_user_id_created_at_id", "generations", ["user_id", "created_at", "id"]
    )
    op.create_index(
        "ix_generations_provider_created_at_id", "generations", ["provider", "created_at", "id"]
    )
    op.create_index("ix_generations_finished_at", "generations", ["finished_at"])
    op.create_index("ix_generation_images_created_at", "generation_images", ["created_at"])

    # Users: the admin searches by any part of an email. pg_trgm is a trusted extension
    # (PostgreSQL 13+): the database's owner may create it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_users_email_trgm",
            "users",
            ["email"],
            postgresql_using="gin",
            postgresql_ops={"email": "gin_trgm_ops"},
        )

    # Audit: newest first by id, filtered by actor, action or target.
    op.drop_index("ix_audit_entries_action", table_name="audit_entries")
    op.drop_index("ix_audit_entries_target", table_name="audit_entries")
    op.create_index("ix_audit_entries_target", "audit_entries", ["target_type", "target_id", "id"])
    op.create_index("ix_audit_entries_actor_id", "audit_entries", ["actor", "id"])
    op.create_index("ix_audit_entries_action_id", "audit_entries", ["action", "id"])

    # Worker heartbeats.
    op.create_table(
        "worker_heartbeats",
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("processed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hostname", name=op.f("pk_worker_heartbeats")),
    )

    # Hourly summaries behind the admin's charts.
    op.create_table(
        "stat_hours",
        sa.Column("hour", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rolled_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_stat_hours")),
    )
    op.create_table(
        "key_attempt_hours",
        sa.Column("hour", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("outcomes", nproxy_core.db.JSONType, nullable=False),
        sa.Column("latencies", nproxy_core.db.JSONType, nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["provider_keys.id"],
            name=op.f("fk_key_attempt_hours_key_id_provider_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hour", "key_id", name=op.f("pk_key_attempt_hours")),
    )
    op.create_table(
        "image_hours",
        sa.Column("hour", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("made", sa.Integer(), nullable=False),
        sa.Column("failed", nproxy_core.db.JSONType, nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_image_hours")),
    )


def downgrade() -> None:
    op.drop_table("image_hours")
    op.drop_table("key_attempt_hours")
    op.drop_table("stat_hours")
    op.drop_table("worker_heartbeats")

    op.drop_index("ix_audit_entries_action_id", table_name="audit_entries")
    op.drop_index("ix_audit_entries_actor_id", table_name="audit_entries")
    op.drop_index("ix_audit_entries_target", table_name="audit_entries")
    op.create_index("ix_audit_entries_target", "audit_entries", ["target_type", "target_id"])
    op.create_index("ix_audit_entries_action", "audit_entries", ["action"])

    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_users_email_trgm", table_name="users")
    op.drop_index("ix_generation_images_created_at", table_name="generation_images")
    op.drop_index("ix_generations_finished_at", table_name="generations")
    op.drop_index("ix_generations_provider_created_at_id", table_name="generations")
    op.drop_index("ix_generations_user_id_created_at_id", table_name="generations")
    op.drop_index("ix_generations_status_created_at_id", table_name="generations")
    op.drop_index("ix_generations_created_at_id", table_name="generations")

    op.drop_column("billing_cycles", "grant_reason")
    op.drop_index("ix_payment_notifications_unmatched", table_name="payment_notifications")
    op.drop_column("payment_notifications", "resolved_by")
    op.drop_column("payment_notifications", "resolution_note")
    op.drop_column("payment_notifications", "resolved_at")
    op.drop_index("ix_payments_awaiting_review", table_name="payments")
    op.drop_index("ix_payments_created_at_id", table_name="payments")
    op.drop_column("payments", "resolved_by")
    op.drop_column("payments", "resolution_note")
    op.drop_column("payments", "resolution")
    op.drop_column("payments", "resolved_at")

    op.drop_index("ix_key_attempts_created_at", table_name="key_attempts")
    op.drop_column("key_attempts", "image_index")
    op.drop_index("ix_provider_keys_project", table_name="provider_keys")
    op.drop_column("provider_keys", "project")
