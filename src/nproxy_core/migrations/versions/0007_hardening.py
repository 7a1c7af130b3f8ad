"""hardening: server-side sessions, upload use, idempotency fingerprints

Revision ID: 0007_hardening
Revises: 0005_generation
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0007_hardening"
down_revision = "0006_key_projects"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_user_sessions_user_id_ip", ["user_id", "ip"], unique=False)

    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("used_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_uploads_used_at_created_at", ["used_at", "created_at"], unique=False
        )
    # Uploads from before this revision that a generation already took count as used. (The
    # embedded SQLite default keeps them all: it has no JSON containment to tell.)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE uploads SET used_at = created_at WHERE EXISTS (SELECT 1 FROM messages"
            " WHERE messages.input_upload_ids @> jsonb_build_array(CAST(uploads.id AS TEXT)))"
        )
    else:
        op.execute("UPDATE uploads SET used_at = created_at")

    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("idempotency_fingerprint", sa.String(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("idempotency_fingerprint")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index("ix_uploads_used_at_created_at")
        batch_op.drop_column("used_at")
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_user_sessions_user_id_ip")
    op.drop_table("user_sessions")
