"""Telegram for customers: Telegram-only accounts, links, bot settings and deliveries

Revision ID: 0024_customer_bot
Revises: 0023_stars_referrals
"""

revision = "0024_customer_bot"
down_revision = "0023_stars_referrals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
