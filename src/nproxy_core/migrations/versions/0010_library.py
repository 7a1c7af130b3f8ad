"""library: a user's generated images, newest first, paged by (created_at, id)

Revision ID: 0010_library
Revises: 0009_telegram
"""

from alembic import op

revision = "0010_library"
down_revision = "0009_telegram"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_generation_images_user_id_created_at_id",
        "generation_images",
        ["user_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_generation_images_user_id_created_at_id", table_name="generation_images")
