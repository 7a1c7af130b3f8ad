"""Alembic environment: the URL comes from nproxy's settings, the metadata from its models."""

from __future__ import annotations

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


run_migrations_online()
