"""Alembic environment: the URL comes from nproxy's settings, the metadata from its models."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from nproxy_core.db import create_engine, import_models
from nproxy_core.migrations import RecordApplied, include_name

config = context.config
settings = config.attributes["settings"]
target_metadata = import_models()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(settings)
    if engine.dialect.name == "sqlite":
        # SQLite changes a column by rebuilding its table (copy, DROP, rename): with foreign keys
        # on, the DROP would delete every row pointing at the table (ON DELETE CASCADE) or fail.
        # SQLite's own recipe: keys off while migrating, then check them before committing.
        sa.event.listen(engine, "connect", _sqlite_keys_off)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Every revision that runs is recorded, so that `nproxy db check` can tell a revision
        # that was skipped from one that ran (alembic_version keeps only the heads).
        on_version_apply=RecordApplied(),
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                tables = sorted({row[0] for row in broken})
                raise RuntimeError(f"the migration left rows whose keys point nowhere in {tables}")


def _sqlite_keys_off(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Runs after nproxy's own connect hook (which turns them on) and outside any transaction,
    # where SQLite honours it.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


run_migrations_online()
