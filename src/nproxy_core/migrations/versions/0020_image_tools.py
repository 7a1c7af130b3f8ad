"""image tools: thumbnails, favourites, share links

Revision ID: 0020_image_tools
Revises: 0019_admin_2fa
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_image_tools"
down_revision = "0019_admin_2fa"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generation_images") as batch_op:
        batch_op.add_column(sa.Column("thumb_key", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("favorite", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("share_token", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("share_show_prompt", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_unique_constraint("uq_generation_images_share_token", ["share_token"])
        batch_op.create_index(
            "ix_generation_images_user_id_favorite_created_at_id",
            ["user_id", "favorite", "created_at", "id"],
        )
    # The library's search by any part of a prompt: PostgreSQL's trigram index serves
    # ILIKE '%words%' (pg_trgm is a trusted extension, made by 0006 already).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_messages_prompt_trgm",
            "messages",
            ["prompt"],
            postgresql_using="gin",
            postgresql_ops={"prompt": "gin_trgm_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_messages_prompt_trgm", table_name="messages")
    with op.batch_alter_table("generation_images") as batch_op:
        batch_op.drop_index("ix_generation_images_user_id_favorite_created_at_id")
        batch_op.drop_constraint("uq_generation_images_share_token", type_="unique")
        batch_op.drop_column("share_show_prompt")
        batch_op.drop_column("share_token")
        batch_op.drop_column("favorite")
        batch_op.drop_column("thumb_key")
