"""image tools: thumbnails, favourites, share links

Revision ID: 0020_image_tools
Revises: 0019_admin_2fa
"""

revision = "0020_image_tools"
down_revision = "0019_admin_2fa"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
