"""Alembic migrations are the only way the schema changes: they must match the models, every
revision below a database's must have run on it, and ``nproxy db check`` says when not."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from click.testing import CliRunner, Result

from cli_runner import write_ini
from conftest import ADMIN_URL, TEST_DB
from nproxy_core import migrations
from nproxy_core.cli import main
from nproxy_core.db import import_models

_numbers = itertools.count(1)


def test_models_and_migrations_agree(engine):
    metadata = import_models()
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": migrations.include_name}
        )
        diff = compare_metadata(context, metadata)
    assert diff == [], diff


def test_migrations_run_on_sqlite_and_check_clean(tmp_path):
    from nproxy_core.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'embedded.sqlite'}"
    upgrade({"sqlalchemy.url": url})
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert set(import_models().tables) <= tables
    # PostgreSQL's trigram index is not made on SQLite, by design: not drift.
    assert migrations.inspect_schema({"sqlalchemy.url": url}).problems() == []


def test_an_embedded_database_with_rows_migrates_through_table_rebuilds(tmp_path):
    """SQLite rebuilds a table to change a column (0024 makes ``users.email`` optional); with
    rows pointing at that table the rebuild must not trip the foreign keys, and they hold after."""
    from nproxy_core.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'dev.sqlite'}"
    upgrade({"sqlalchemy.url": url}, "0023_stars_referrals")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO users (email, password_hash, role, is_blocked, session_version, "
            "created_at) VALUES ('ann@example.com', 'x', 'user', 0, 1, '2026-01-01 00:00:00')"
        )
        connection.exec_driver_sql(
            "INSERT INTO conversations (id, user_id, title, created_at, updated_at) "
            "VALUES ('0123456789abcdef0123456789abcdef', 1, 'Kites', "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    upgrade({"sqlalchemy.url": url})
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert connection.exec_driver_sql("SELECT user_id FROM conversations").scalar() == 1
    engine.dispose()
    assert migrations.inspect_schema({"sqlalchemy.url": url}).problems() == []


def invoke(settings: dict[str, Any], tmp_path: Path, *args: str) -> Result:
    ini = write_ini(tmp_path, settings, name=f"cli{next(_numbers)}.ini")
    return CliRunner().invoke(main, ["-c", str(ini), *args])


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# Databases of their own (the suite's database stays at head): each made and dropped here.


def _create(name: str, template: str | None = None) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def _drop(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture(scope="module")
def migrated_template(base_settings: dict[str, Any]) -> Iterator[str]:
    """A database migrated to head once; each test gets a copy (CREATE DATABASE ... TEMPLATE)."""
    name = f"{TEST_DB}_mig_template"
    _create(name)
    migrations.upgrade({**base_settings, "sqlalchemy.url": _url(name)})
    yield name
    _drop(name)


@pytest.fixture
def fresh_settings(base_settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Settings naming an empty database of the test's own."""
    name = f"{TEST_DB}_mig_{next(_numbers)}"
    _create(name)
    yield {**base_settings, "sqlalchemy.url": _url(name)}
    _drop(name)


@pytest.fixture
def migrated_settings(base_settings: dict[str, Any], migrated_template: str) -> Iterator[dict]:
    """Settings naming a database of the test's own, migrated to head."""
    name = f"{TEST_DB}_mig_{next(_numbers)}"
    _create(name, template=migrated_template)
    yield {**base_settings, "sqlalchemy.url": _url(name)}
    _drop(name)


def execute(settings: dict[str, Any], *statements: str) -> None:
    engine = sa.create_engine(settings["sqlalchemy.url"])
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def old_history(tmp_path: Path, *, keep_record: bool) -> Config:
    """The migrations as one commit of main had them before a merge reordered the history:
    ``0010_library`` straight on ``0008_api_keys``, ``0009_telegram`` not there yet. Without
    ``keep_record``, also from before the applied-revisions record (0011 and after)."""
    folder = tmp_path / "old-migrations"
    shutil.copytree(
        migrations.HERE, folder, ignore=shutil.ignore_patterns("__pycache__", "__init__.py")
    )
    versions = folder / "versions"
    (versions / "0009_telegram.py").unlink()
    library = versions / "0010_library.py"
    library.write_text(library.read_text().replace('"0009_telegram"', '"0008_api_keys"'))
    if not keep_record:
        for path in versions.glob("*.py"):
            if path.name >= "0011":
                path.unlink()
    cfg = Config()
    cfg.set_main_option("script_location", str(folder))
    return cfg


def test_a_clean_database_passes_check_and_is_at_head(migrated_settings, tmp_path):
    checked = invoke(migrated_settings, tmp_path, "db", "check")
    assert checked.exit_code == 0, checked.output
    assert "schema matches" in checked.stdout
    current = invoke(migrated_settings, tmp_path, "db", "current")
    assert current.exit_code == 0, current.output
    [head] = migrations.script_directory().get_heads()
    assert lines(current.stdout) == [f"{head} (head)"]


def test_only_the_declared_tables_have_rows_after_a_fresh_upgrade(migrated_settings):
    # A backup restores into a database that only `db upgrade` touched (compose's migrate
    # runs first): its emptiness check skips exactly the tables the migrations fill.
    engine = sa.create_engine(migrated_settings["sqlalchemy.url"])
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        filled = {
            table
            for table in tables
            if conn.scalar(sa.select(sa.exists().select_from(sa.table(table))))
        }
    engine.dispose()
    assert filled - migrations.BOOKKEEPING == migrations.SEEDED


def test_every_revision_that_ran_is_recorded(migrated_settings):
    state = migrations.inspect_schema(migrated_settings)
    every = {r.revision for r in migrations.script_directory().walk_revisions()}
    assert state.recorded == every
    assert state.skipped == [] and state.problems() == []


def test_the_record_backfill_knows_every_earlier_revision():
    """0012 backfills earlier revisions from what each left in the schema: one missing from its
    list would be reported as skipped on every database migrated before 0012 existed."""
    script = migrations.script_directory()
    module = script.get_revision("0012_applied_revisions").module
    below = {r.revision for r in script.iterate_revisions("0012_applied_revisions", "base")}
    assert set(module.EVIDENCE) == below - {"0012_applied_revisions"}


def test_a_revision_moved_below_the_database_by_a_merge_is_named(fresh_settings, tmp_path):
    # Migrated by the old history, which had no 0009_telegram below 0010_library...
    cfg = old_history(tmp_path, keep_record=True)
    cfg.attributes["settings"] = fresh_settings
    command.upgrade(cfg, "heads")
    # ... then checked by today's: the database is at today's head, but never ran 0009.
    checked = invoke(fresh_settings, tmp_path, "db", "check")
    assert checked.exit_code == 1
    assert "0009_telegram" in checked.stderr and "skipped" in checked.stderr
    assert "schema matches" not in checked.output
    # The telegram tables are missing too, and each is named.
    assert "table telegram_admins: in the models, missing from the database" in checked.stderr

    upgraded = invoke(fresh_settings, tmp_path, "db", "upgrade")
    assert upgraded.exit_code != 0
    assert "0009_telegram" in upgraded.stderr and "upgraded" not in upgraded.output
    assert len(lines(upgraded.stderr)) == 1

    repaired = invoke(fresh_settings, tmp_path, "db", "upgrade", "--apply-skipped")
    assert repaired.exit_code == 0, repaired.output
    assert "applied skipped revision 0009_telegram" in repaired.stdout
    assert invoke(fresh_settings, tmp_path, "db", "check").exit_code == 0


def test_upgrading_a_database_from_before_the_record_finds_the_skip(fresh_settings, tmp_path):
    """The case observed on main: the old history stamped 0010_library without 0009_telegram;
    today's upgrade printed success. Now the migration that starts the record finds it."""
    cfg = old_history(tmp_path, keep_record=False)
    cfg.attributes["settings"] = fresh_settings
    command.upgrade(cfg, "heads")
    upgraded = invoke(fresh_settings, tmp_path, "db", "upgrade")
    assert upgraded.exit_code != 0
    [line] = lines(upgraded.stderr)
    assert "never ran revision(s) 0009_telegram," in line
    assert "upgraded" not in upgraded.stdout


def test_a_record_removed_with_its_tables_is_a_skip(migrated_settings, tmp_path):
    execute(
        migrated_settings,
        "DROP TABLE alert_messages, alerts, telegram_pairings, telegram_admins",
        "DELETE FROM nproxy_applied_revisions WHERE revision = '0009_telegram'",
    )
    checked = invoke(migrated_settings, tmp_path, "db", "check")
    assert checked.exit_code == 1
    assert "skipped revisions" in checked.stderr and "0009_telegram" in checked.stderr


def test_a_schema_altered_by_hand_fails_check_naming_each_change(migrated_settings, tmp_path):
    execute(
        migrated_settings,
        "ALTER TABLE users DROP COLUMN last_login_at",
        "CREATE INDEX ix_payments_by_hand ON payments (created_at)",
        "ALTER TABLE uploads ADD COLUMN note text",
    )
    checked = invoke(migrated_settings, tmp_path, "db", "check")
    assert checked.exit_code == 1
    assert "Traceback" not in checked.output
    assert sorted(lines(checked.stderr)) == [
        "column uploads.note: in the database, not in the models",
        "column users.last_login_at: in the models, missing from the database",
        "index ix_payments_by_hand on payments: in the database, not in the models",
    ]
    assert checked.stdout == ""


def test_current_and_check_on_a_database_behind_head(fresh_settings, tmp_path):
    migrations.upgrade(fresh_settings, "0010_library")
    current = invoke(fresh_settings, tmp_path, "db", "current")
    assert current.exit_code == 0, current.output
    assert "0010_library (not head)" in current.stdout
    checked = invoke(fresh_settings, tmp_path, "db", "check")
    assert checked.exit_code == 1
    assert "run `nproxy db upgrade`" in checked.stderr
    upgraded = invoke(fresh_settings, tmp_path, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    [head] = migrations.script_directory().get_heads()
    assert upgraded.stdout.strip() == f"database upgraded to {head}"
    assert invoke(fresh_settings, tmp_path, "db", "check").exit_code == 0


def test_an_empty_database_has_no_revision(fresh_settings, tmp_path):
    current = invoke(fresh_settings, tmp_path, "db", "current")
    assert current.exit_code == 0
    assert "no revision" in current.stdout
    checked = invoke(fresh_settings, tmp_path, "db", "check")
    assert checked.exit_code == 1
    assert "nproxy db upgrade" in checked.stderr


def test_a_downgrade_takes_its_revisions_out_of_the_record(migrated_settings):
    script = migrations.script_directory()
    above = [r.revision for r in script.iterate_revisions("heads", "0012_applied_revisions")]
    assert above, "a revision above 0012 is needed to downgrade through"
    command.downgrade(migrations.alembic_config(migrated_settings), "0012_applied_revisions")
    state = migrations.inspect_schema(migrated_settings, compare=False)
    assert state.current == ("0012_applied_revisions",)
    assert not set(above) & state.recorded and state.skipped == []
    migrations.upgrade(migrated_settings)
    assert set(above) <= migrations.inspect_schema(migrated_settings, compare=False).recorded
