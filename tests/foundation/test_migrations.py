"""Alembic migrations are the only way the schema changes: they must match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nproxy_core.db import import_models


def test_models_and_migrations_agree(engine):
    metadata = import_models()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == [], diff


def test_migrations_run_on_sqlite(tmp_path):
    import sqlalchemy as sa

    from nproxy_core.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'embedded.sqlite'}"
    upgrade({"sqlalchemy.url": url})
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert set(import_models().tables) <= tables
