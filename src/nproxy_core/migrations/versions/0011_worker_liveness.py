"""worker liveness: one row per running worker process, and the process that runs each job

Revision ID: 0011_worker_liveness
Revises: 0010_library
"""

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0011_worker_liveness"
down_revision = "0010_library"
branch_labels = None
depends_on = None

UTC = nproxy_core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "worker_processes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("last_seen_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_processes")),
    )
    op.add_column("generations", sa.Column("worker_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("generations", "worker_id")
    op.drop_table("worker_processes")
