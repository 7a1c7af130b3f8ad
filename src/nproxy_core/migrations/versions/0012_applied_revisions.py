"""applied revisions: a record of every migration that really ran on this database

Revision ID: 0012_applied_revisions
Revises: 0011_worker_liveness

``alembic_version`` holds only the heads, so a database stamped at a revision that a merge later
moved above revisions it never ran looks up to date (one commit of main skipped 0009_telegram
this way). From here on every migration run writes its revisions into
``nproxy_applied_revisions`` (``nproxy_core.migrations.RecordApplied``), and ``nproxy db check``
compares that record with the history.

The revisions before this one are backfilled from what each left in the schema, not from
``alembic_version``: a database that skipped one of them keeps that revision out of the record,
so the check names it instead of the backfill hiding it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_applied_revisions"
down_revision = "0011_worker_liveness"
branch_labels = None
depends_on = None

TABLE = "nproxy_applied_revisions"

# Something each earlier revision created, and that no other revision creates.
EVIDENCE = {
    "0001_foundation": ("table", "users", None),
    "0002_keypool": ("table", "provider_keys", None),
    "0003_billing": ("table", "billing_cycles", None),
    "0004_uploads": ("table", "uploads", None),
    "0005_generation": ("table", "generations", None),
    "0006_key_projects": ("column", "provider_keys", "project"),
    "0007_hardening": ("table", "user_sessions", None),
    "0008_api_keys": ("table", "api_keys", None),
    "0009_telegram": ("table", "telegram_admins", None),
    "0010_library": ("index", "generation_images", "ix_generation_images_user_id_created_at_id"),
    "0011_worker_liveness": ("table", "worker_processes", None),
}


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table(TABLE):
        op.create_table(
            TABLE,
            sa.Column("revision", sa.String(length=128), nullable=False),
            sa.Column(
                "applied_at",
                sa.DateTime(timezone=True),
                server_default=sa.text("CURRENT_TIMESTAMP"),
                nullable=False,
            ),
            sa.PrimaryKeyConstraint("revision", name=op.f("pk_nproxy_applied_revisions")),
        )
    recorded = set(bind.execute(sa.text(f"SELECT revision FROM {TABLE}")).scalars())  # noqa: S608
    found = [rev for rev, evidence in EVIDENCE.items() if _present(inspector, *evidence)]
    table = sa.table(TABLE, sa.column("revision"))
    rows = [{"revision": rev} for rev in found if rev not in recorded]
    if rows:
        op.bulk_insert(table, rows)


def _present(inspector: sa.Inspector, kind: str, table: str, name: str | None) -> bool:
    if not inspector.has_table(table):
        return False
    if kind == "column":
        return any(c["name"] == name for c in inspector.get_columns(table))
    if kind == "index":
        return any(i["name"] == name for i in inspector.get_indexes(table))
    return True


def downgrade() -> None:
    op.drop_table(TABLE)
