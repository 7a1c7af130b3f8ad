"""templates: prompt recipes with fields

Revision ID: 0021_templates
Revises: 0020_image_tools
"""

revision = "0021_templates"
down_revision = "0020_image_tools"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
