"""Languages: the language each account chose

Revision ID: 0026_languages
Revises: 0025_admin_keys_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0026_languages"
down_revision = "0025_admin_keys_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # None: not chosen yet, so the request's cookie or Accept-Language decides.
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("language")
