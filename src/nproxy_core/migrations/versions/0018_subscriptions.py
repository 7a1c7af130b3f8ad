"""subscriptions: processors that renew by themselves (Stripe)

Revision ID: 0018_subscriptions
Revises: 0017_image_origin
"""

revision = "0018_subscriptions"
down_revision = "0017_image_origin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
