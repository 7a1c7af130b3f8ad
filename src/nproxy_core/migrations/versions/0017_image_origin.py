"""image origin: the provider and model that made each image, and what it wants back with it

Revision ID: 0017_image_origin
Revises: 0016_units_and_packs
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0017_image_origin"
down_revision = "0016_units_and_packs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generation_images") as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("model", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("continuation", nproxy_core.db.JSONType, nullable=True))
    with op.batch_alter_table("uploads") as batch_op:
        batch_op.add_column(sa.Column("origin_provider", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("origin_model", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("continuation", nproxy_core.db.JSONType, nullable=True))
    # Images made before: their generation's provider and model made them (no fallback then).
    op.execute(
        "UPDATE generation_images SET "
        "provider = (SELECT g.provider FROM generations g "
        "WHERE g.id = generation_images.generation_id), "
        "model = (SELECT m.model FROM generations g JOIN messages m ON m.id = g.message_id "
        "WHERE g.id = generation_images.generation_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch_op:
        batch_op.drop_column("continuation")
        batch_op.drop_column("origin_model")
        batch_op.drop_column("origin_provider")
    with op.batch_alter_table("generation_images") as batch_op:
        batch_op.drop_column("continuation")
        batch_op.drop_column("model")
        batch_op.drop_column("provider")
