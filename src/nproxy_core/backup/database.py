"""The database part of a backup: every table's rows as of one snapshot, and loading them back.

PostgreSQL is read through psycopg, one ``COPY table TO STDOUT`` per table, all inside one
``SERIALIZABLE READ ONLY DEFERRABLE`` transaction: every table is seen at the same instant while
the app keeps writing, and nothing waits on the backup (it takes no lock a writer needs). Not
pg_dump: the image has none, and pg_dump refuses a server newer than itself, so the postgres
image's own would have to follow the server's major version. COPY's text format loads back with
``COPY ... FROM STDIN`` on any version. The schema is not in the dump: the migrations make it, up
to the backup's revision, before the rows are loaded (the restore's one transaction), and then
every sequence is set to where it stood.

SQLite (the embedded default) is copied whole with SQLite's online backup API.
"""

from __future__ import annotations

import contextlib
import graphlib
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from nproxy_core.backup.files import CHUNK, BackupFiles, inside
from nproxy_core.migrations import BOOKKEEPING, SEEDED

#: The table Alembic keeps its revision in: the manifest records the revision instead.
VERSION_TABLE = "alembic_version"
#: Rows with a column of this name own a stored object (uploads, generated images).
STORAGE_KEY_COLUMN = "storage_key"
SQLITE_FILE = "database/nproxy.sqlite3"
_HEADS = "SELECT version_num FROM alembic_version"
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")


class DatabaseError(Exception):
    """The database cannot be dumped or loaded; one line for the operator."""


@dataclass
class Dump:
    """What the manifest says of the database, and the storage keys its rows name."""

    manifest: dict[str, Any]
    storage_keys: set[str] = field(default_factory=set)


@dataclass
class State:
    """What a restore must know of the target database before it changes anything."""

    tables: list[str]
    heads: list[str]
    #: The first table holding rows (the migrations' bookkeeping aside), or None.
    table_with_rows: str | None


def backend(url: str | sa.URL) -> str:
    return sa.make_url(url).get_backend_name()


def dump(url: str, files: BackupFiles, snapshot: str | None = None) -> Dump:
    if backend(url) == "sqlite":
        if snapshot:
            raise DatabaseError("--snapshot is for PostgreSQL only")
        return _dump_sqlite(url, files)
    if backend(url) == "postgresql":
        return _dump_postgresql(url, files, snapshot)
    raise DatabaseError(f"cannot back up a {backend(url)} database")


def state(url: str) -> State:
    if backend(url) == "sqlite":
        return _state_sqlite(url)
    return _state_postgresql(url)


def load(url: str, folder: Path, manifest: dict[str, Any]) -> None:
    if backend(url) == "sqlite":
        _load_sqlite(url, folder)
    else:
        _load_postgresql(url, folder, manifest)


# --- PostgreSQL --------------------------------------------------------------------------------


def _connect(url: str) -> Any:
    import psycopg

    conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return psycopg.connect(conninfo)
    except psycopg.OperationalError as exc:
        # libpq's message names the host and the reason, never the password.
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"cannot connect to the database: {reason}") from None


_TABLES = """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
    ORDER BY c.relname
"""
_SEQUENCES = """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind = 'S' ORDER BY c.relname
"""
# Generated columns are computed again on load; COPY FROM refuses values for them.
_COLUMNS = """
    SELECT a.attname FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relname = %s
      AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
    ORDER BY a.attnum
"""
_FOREIGN_KEYS = """
    SELECT child.relname, parent.relname FROM pg_constraint k
    JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid
    JOIN pg_namespace n ON n.oid = child.relnamespace
    WHERE k.contype = 'f' AND n.nspname = current_schema()
"""


def _column(conn: Any, query: Any, params: Any = None) -> list[Any]:
    return [row[0] for row in conn.execute(query, params)]


def _dump_postgresql(url: str, files: BackupFiles, snapshot: str | None) -> Dump:
    from psycopg import IsolationLevel, sql

    with contextlib.closing(_connect(url)) as conn:
        conn.read_only = True
        if snapshot:
            # As pg_dump --snapshot: the rows as another session sees them (the snapshot that
            # session exported); importing one needs REPEATABLE READ.
            if not _SNAPSHOT_ID.fullmatch(snapshot):
                raise DatabaseError(f"not a snapshot id: {snapshot!r}")
            conn.isolation_level = IsolationLevel.REPEATABLE_READ
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        else:
            # DEFERRABLE waits, if it must, for a snapshot no running serializable transaction
            # can still invalidate; it then runs without taking or risking any conflict.
            conn.isolation_level = IsolationLevel.SERIALIZABLE
            conn.deferrable = True
        tables = _column(conn, _TABLES)
        if VERSION_TABLE not in tables:
            raise DatabaseError("the database has no nproxy schema (run `nproxy db upgrade`)")
        heads = sorted(_column(conn, _HEADS))
        result = Dump(manifest={})
        dumped: dict[str, Any] = {}
        for table in tables:
            # The migration bookkeeping is not dumped: the restore's own migration run writes
            # it, truthfully, for the database it migrates.
            if table in BOOKKEEPING:
                continue
            columns = _column(conn, _COLUMNS, (table,))
            relative = f"database/{table}.copy"
            statement = sql.SQL("COPY {} ({}) TO STDOUT").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            rows = 0
            with files.open(relative) as out, conn.cursor().copy(statement) as copy:
                for chunk in copy:
                    data = bytes(chunk)
                    out.write(data)
                    # Text format: one line per row (newlines inside values are escaped).
                    rows += data.count(b"\n")
            dumped[table] = {"file": relative, "columns": columns, "rows": rows}
            if STORAGE_KEY_COLUMN in columns:
                result.storage_keys.update(
                    _column(
                        conn,
                        sql.SQL("SELECT {} FROM {} WHERE {} IS NOT NULL").format(
                            sql.Identifier(STORAGE_KEY_COLUMN),
                            sql.Identifier(table),
                            sql.Identifier(STORAGE_KEY_COLUMN),
                        ),
                    )
                )
        # Sequences are outside transactions: read now, each is at least as far as any row of
        # the snapshot took it (a gap after restore is harmless, a reused id would not be).
        sequences = {}
        for name in _column(conn, _SEQUENCES):
            last_value, is_called = conn.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(name))
            ).fetchone()
            sequences[name] = {"last_value": last_value, "is_called": is_called}
        version = conn.info.server_version
        conn.rollback()
    result.manifest = {
        "dialect": "postgresql",
        "server_version": f"{version // 10000}.{version % 10000}",
        "migration_heads": heads,
        "tables": dumped,
        "sequences": sequences,
    }
    return result


def _state_postgresql(url: str) -> State:
    from psycopg import sql

    with contextlib.closing(_connect(url)) as conn:
        tables = _column(conn, _TABLES)
        heads = sorted(_column(conn, _HEADS)) if VERSION_TABLE in tables else []
        with_rows = None
        for table in tables:
            # What the migrations put in is no one's data: the restore replaces it.
            if table in BOOKKEEPING or table in SEEDED:
                continue
            query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
            if conn.execute(query).fetchone()[0]:
                with_rows = table
                break
        conn.rollback()
    return State(tables=tables, heads=heads, table_with_rows=with_rows)


def _load_order(conn: Any, tables: list[str]) -> list[str]:
    """Parents before children, so that every foreign key holds as each COPY ends."""
    graph: dict[str, set[str]] = {table: set() for table in tables}
    for child, parent in conn.execute(_FOREIGN_KEYS):
        if child in graph and parent in graph and child != parent:
            graph[child].add(parent)
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise DatabaseError(f"foreign keys form a cycle: {' -> '.join(exc.args[1])}") from None


def _load_postgresql(url: str, folder: Path, manifest: dict[str, Any]) -> None:
    from psycopg import sql

    tables: dict[str, Any] = manifest["tables"]
    with contextlib.closing(_connect(url)) as conn:
        present = set(_column(conn, _TABLES))
        missing = sorted(set(tables) - present)
        if missing:
            raise DatabaseError(f"the migrated schema has no table {missing[0]!r}")
        # One transaction: every row, or none. TRUNCATE first: the schema was empty before the
        # migrations ran, so anything there now is what a migration itself put in.
        if tables:
            conn.execute(
                sql.SQL("TRUNCATE {}").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in sorted(tables))
                )
            )
        for table in _load_order(conn, sorted(tables)):
            entry = tables[table]
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, entry["columns"]))
            )
            with (
                inside(folder, entry["file"]).open("rb") as source,
                conn.cursor().copy(statement) as copy,
            ):
                while chunk := source.read(CHUNK):
                    copy.write(chunk)
        for name, value in manifest["sequences"].items():
            conn.execute(
                "SELECT setval(%s::regclass, %s, %s)",
                (
                    sql.Identifier(name).as_string(conn),
                    value["last_value"],
                    value["is_called"],
                ),
            )
        conn.commit()


# --- SQLite --------------------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path:
    database = sa.make_url(url).database
    if not database or database == ":memory:":
        raise DatabaseError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


@contextlib.contextmanager
def _sqlite(path: Path, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    target = f"file:{path}?mode=ro" if read_only else str(path)
    conn = sqlite3.connect(target, uri=read_only, timeout=30)
    try:
        yield conn
    finally:
        conn.close()


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _dump_sqlite(url: str, files: BackupFiles) -> Dump:
    source = _sqlite_path(url)
    if not source.exists():
        raise DatabaseError(f"the SQLite database {source} does not exist")
    target = inside(files.root, SQLITE_FILE)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The online backup API copies a consistent image while others keep writing.
    with _sqlite(source, read_only=True) as src, _sqlite(target) as dst:
        src.backup(dst)
    files.record(SQLITE_FILE)
    result = Dump(manifest={})
    with _sqlite(target, read_only=True) as conn:
        tables = _sqlite_tables(conn)
        if VERSION_TABLE not in tables:
            raise DatabaseError("the database has no nproxy schema (run `nproxy db upgrade`)")
        heads = sorted(row[0] for row in conn.execute(_HEADS))
        dumped = {}
        for table in tables:
            if table in BOOKKEEPING:
                continue
            # Table names come from sqlite_master, quoted: no injection (S608).
            rows = conn.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0]  # noqa: S608
            dumped[table] = {"file": SQLITE_FILE, "rows": rows}
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({_quote(table)})")]
            if STORAGE_KEY_COLUMN in columns:
                result.storage_keys.update(
                    row[0]
                    for row in conn.execute(
                        f"SELECT {STORAGE_KEY_COLUMN} FROM {_quote(table)} "  # noqa: S608
                        f"WHERE {STORAGE_KEY_COLUMN} IS NOT NULL"
                    )
                )
        version = conn.execute("SELECT sqlite_version()").fetchone()[0]
    result.manifest = {
        "dialect": "sqlite",
        "server_version": version,
        "migration_heads": heads,
        "tables": dumped,
        "sequences": {},
    }
    return result


def _state_sqlite(url: str) -> State:
    path = _sqlite_path(url)
    if not path.exists() or path.stat().st_size == 0:
        return State(tables=[], heads=[], table_with_rows=None)
    with _sqlite(path, read_only=True) as conn:
        tables = _sqlite_tables(conn)
        heads = sorted(row[0] for row in conn.execute(_HEADS)) if VERSION_TABLE in tables else []
        with_rows = next(
            (
                table
                for table in tables
                if table not in BOOKKEEPING
                and table not in SEEDED
                and conn.execute(f"SELECT EXISTS (SELECT 1 FROM {_quote(table)})").fetchone()[0]  # noqa: S608
            ),
            None,
        )
    return State(tables=tables, heads=heads, table_with_rows=with_rows)


def _load_sqlite(url: str, folder: Path) -> None:
    target = _sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The backup API writes every page of the copy over the target: schema and rows, at once.
    with _sqlite(inside(folder, SQLITE_FILE), read_only=True) as src, _sqlite(target) as dst:
        src.backup(dst)
