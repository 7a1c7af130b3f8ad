"""two-factor login for admins (TOTP and recovery codes)

Revision ID: 0019_admin_2fa
Revises: 0018_subscriptions
"""

revision = "0019_admin_2fa"
down_revision = "0018_subscriptions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
