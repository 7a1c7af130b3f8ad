"""key deletion: a deleted provider key keeps its row (and its attempts' history), marked

Revision ID: 0013_key_deletion
Revises: 0012_applied_revisions
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0013_key_deletion"
down_revision = "0012_applied_revisions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provider_keys") as batch_op:
        batch_op.add_column(
            sa.Column("deleted_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("provider_keys") as batch_op:
        batch_op.drop_column("deleted_at")
