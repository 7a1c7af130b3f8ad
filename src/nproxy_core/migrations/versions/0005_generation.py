"""generation: conversations, messages, generation jobs and their images

Revision ID: 0005_generation
Revises: 0002_keypool, 0003_billing, 0004_uploads
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0005_generation"
# A merge of the feature branches: generations refer to users, quota holds and uploads.
down_revision = ("0002_keypool", "0003_billing", "0004_uploads")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_conversations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversations_user_id_updated_at", ["user_id", "updated_at"], unique=False
        )

    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "mode",
            sa.Enum(
                "text_to_image",
                "image_to_image",
                name="generation_mode",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("resolution", sa.String(length=64), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("strength", sa.Float(), nullable=True),
        sa.Column("input_upload_ids", nproxy_core.db.JSONType, nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_messages_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_messages_conversation_id"), ["conversation_id"], unique=False
        )

    op.create_table(
        "generations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "partial",
                "failed",
                name="generation_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("quota_hold_id", sa.Integer(), nullable=True),
        sa.Column("lease_owner", sa.String(length=96), nullable=True),
        sa.Column("lease_expires_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("enqueued_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_generations_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_generations_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["quota_hold_id"],
            ["quota_holds.id"],
            name=op.f("fk_generations_quota_hold_id_quota_holds"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_generations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_generations_idempotency"),
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_generations_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_generations_message_id"), ["message_id"], unique=False)
        batch_op.create_index(
            "ix_generations_status_enqueued_at", ["status", "enqueued_at"], unique=False
        )
        batch_op.create_index(
            "ix_generations_status_lease_expires_at", ["status", "lease_expires_at"], unique=False
        )

    op.create_table(
        "generation_images",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("mime", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_generation_images_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_generation_images_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_images")),
        sa.UniqueConstraint("generation_id", "n", name="uq_generation_images_n"),
        sa.UniqueConstraint("storage_key", name=op.f("uq_generation_images_storage_key")),
    )


def downgrade() -> None:
    op.drop_table("generation_images")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_index("ix_generations_status_lease_expires_at")
        batch_op.drop_index("ix_generations_status_enqueued_at")
        batch_op.drop_index(batch_op.f("ix_generations_message_id"))
        batch_op.drop_index(batch_op.f("ix_generations_conversation_id"))

    op.drop_table("generations")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_conversation_id"))

    op.drop_table("messages")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_user_id_updated_at")

    op.drop_table("conversations")
