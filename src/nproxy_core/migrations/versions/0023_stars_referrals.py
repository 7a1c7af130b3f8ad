"""Telegram Stars payments and referrals

Revision ID: 0023_stars_referrals
Revises: 0022_admin_indexes
"""

revision = "0023_stars_referrals"
down_revision = "0022_admin_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
