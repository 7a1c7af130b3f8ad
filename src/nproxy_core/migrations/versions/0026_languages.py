"""Languages: the language each account chose

Revision ID: 0026_languages
Revises: 0025_admin_keys_index
"""

revision = "0026_languages"
down_revision = "0025_admin_keys_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
