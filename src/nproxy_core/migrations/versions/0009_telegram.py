"""telegram: paired admins, pairing codes, admin alerts and their outbox

Revision ID: 0009_telegram
Revises: 0008_api_keys
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0009_telegram"
down_revision = "0008_api_keys"
branch_labels = None
depends_on = None

UTC = nproxy_core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "telegram_admins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("paired_at", UTC, nullable=False),
        sa.Column("paired_by", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_telegram_admins_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_admins")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_telegram_admins_telegram_id")),
    )
    op.create_index(op.f("ix_telegram_admins_user_id"), "telegram_admins", ["user_id"])
    op.create_table(
        "telegram_pairings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("completed_at", UTC, nullable=True),
        sa.Column("notified_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_pairings")),
        sa.UniqueConstraint("code", name=op.f("uq_telegram_pairings_code")),
    )
    op.create_index(op.f("ix_telegram_pairings_telegram_id"), "telegram_pairings", ["telegram_id"])
    op.create_index(op.f("ix_telegram_pairings_expires_at"), "telegram_pairings", ["expires_at"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column(
            "state",
            sa.Enum("open", "resolved", name="alert_state", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("first_seen", UTC, nullable=False),
        sa.Column("last_seen", UTC, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sent_count", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", UTC, nullable=True),
        sa.Column("resolved_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_state"), "alerts", ["state"])
    op.create_index(op.f("ix_alerts_last_seen"), "alerts", ["last_seen"])
    op.create_index(
        "uq_alerts_open_kind_subject",
        "alerts",
        ["kind", "subject"],
        unique=True,
        postgresql_where=sa.text("state = 'open'"),
        sqlite_where=sa.text("state = 'open'"),
    )
    op.create_table(
        "alert_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", UTC, nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_messages_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_messages")),
    )
    op.create_index(op.f("ix_alert_messages_alert_id"), "alert_messages", ["alert_id"])
    op.create_index("ix_alert_messages_due", "alert_messages", ["sent_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("alert_messages")
    op.drop_table("alerts")
    op.drop_table("telegram_pairings")
    op.drop_table("telegram_admins")
