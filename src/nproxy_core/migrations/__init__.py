"""Alembic migrations: the only way the schema changes, and the checks that they all ran.

``alembic_version`` holds only a database's heads. When a merge reorders the history, a
database stamped at a revision that now sits above revisions it never ran looks up to date, and
``alembic upgrade`` does nothing (one commit of main skipped two revisions this way). So every
migration run also records each revision it applies in ``nproxy_applied_revisions``
(:class:`RecordApplied`, installed by ``env.py``), and :func:`inspect_schema` compares that
record with the code's history (skipped revisions) and the live schema with the models (drift).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory

HERE = Path(__file__).resolve().parent

#: Alembic's bookkeeping, not the application's: outside the models, left out of the diff.
APPLIED_TABLE = "nproxy_applied_revisions"
BOOKKEEPING = frozenset({"alembic_version", APPLIED_TABLE})
#: Tables whose rows a migration itself inserts (0014: the plan ``monthly``; 0021: the shipped
#: templates): a database that
#: only ``nproxy db upgrade`` touched has rows here and nowhere else. A backup restores into
#: such a database (its rows are replaced by the backup's). A test checks this list against
#: what a fresh upgrade leaves.
SEEDED = frozenset({"plans", "prompt_templates"})

_applied = sa.table(APPLIED_TABLE, sa.column("revision", sa.String))


class SchemaError(Exception):
    """The database's schema cannot be trusted; the message says why, for the operator."""


def alembic_config(settings: dict[str, Any]) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["settings"] = settings
    return cfg


def script_directory(settings: dict[str, Any] | None = None) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(settings or {}))


class RecordApplied:
    """Alembic's ``on_version_apply`` callback: writes each revision a run applies.

    Revisions applied before the table exists (a fresh database: it is made by
    ``0012_applied_revisions``) are kept and written as soon as it does. A downgrade removes the
    record; a stamp writes nothing, since a stamp runs nothing.
    """

    def __init__(self) -> None:
        self.pending: list[str] = []

    def __call__(
        self, *, ctx: MigrationContext, step: MigrationInfo, heads: Any, run_args: Any
    ) -> None:
        if step.is_stamp:
            return
        connection = ctx.connection
        assert connection is not None
        exists = sa.inspect(connection).has_table(APPLIED_TABLE)
        if not step.is_upgrade:
            self.pending = [r for r in self.pending if r not in step.up_revision_ids]
            if exists:
                connection.execute(
                    sa.delete(_applied).where(_applied.c.revision.in_(step.up_revision_ids))
                )
            return
        self.pending.extend(step.up_revision_ids)
        if exists:
            recorded = _recorded(connection) or set()
            new = [r for r in dict.fromkeys(self.pending) if r not in recorded]
            if new:
                connection.execute(sa.insert(_applied), [{"revision": r} for r in new])
            self.pending.clear()


def _recorded(connection: sa.Connection) -> set[str] | None:
    """The revisions recorded as applied, or None when the database keeps no record yet."""
    if not sa.inspect(connection).has_table(APPLIED_TABLE):
        return None
    return set(connection.execute(sa.select(_applied.c.revision)).scalars())


@dataclass
class SchemaState:
    """Where a database stands against the code's migration history and models."""

    current: tuple[str, ...]  # the database's heads (alembic_version)
    heads: tuple[str, ...]  # the code's heads
    recorded: set[str] | None  # revisions recorded as applied; None: no record kept yet
    skipped: list[str] = field(default_factory=list)  # below current, never applied (oldest first)
    unknown: list[str] = field(default_factory=list)  # current revisions the code does not know
    differences: list[str] = field(default_factory=list)  # schema against models, one per line

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.heads)

    def problems(self) -> list[str]:
        """One line per reason not to trust the schema; empty when all is well."""
        lines = []
        if not self.current:
            lines.append("the database has no schema revision: run `nproxy db upgrade`")
        for revision in self.unknown:
            lines.append(
                f"the database is at revision {revision}, which this code does not know "
                "(a newer or another branch's version?)"
            )
        if self.current and not self.unknown and not self.at_head:
            lines.append(
                f"the database is at {', '.join(self.current)}, the code's head is "
                f"{', '.join(self.heads)}: run `nproxy db upgrade`"
            )
        if self.current and self.recorded is None and not self.unknown:
            lines.append(
                f"the database keeps no record of applied revisions ({APPLIED_TABLE}): "
                "run `nproxy db upgrade`"
            )
        if self.skipped:
            lines.append(
                "skipped revisions (below the database's revision in today's history, never "
                f"applied): {', '.join(self.skipped)}"
            )
        lines.extend(self.differences)
        return lines


def skipped_revisions(
    script: ScriptDirectory, current: Sequence[str], recorded: set[str]
) -> list[str]:
    """Revisions that lie below ``current`` in the code's history but were never applied,
    oldest first."""
    known = [rev for rev in current if _known(script, rev)]
    below = [r.revision for r in script.revision_map.iterate_revisions(known, "base")]
    return [rev for rev in reversed(below) if rev not in recorded]


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises ResolutionError, CommandError... for an unknown id
        return False


def inspect_schema(settings: dict[str, Any], *, compare: bool = True) -> SchemaState:
    """The database's revisions, skipped revisions and (with ``compare``) its drift from the
    models."""
    from nproxy_core.db import create_engine

    script = script_directory(settings)
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            return _state(script, connection, compare=compare)
    finally:
        engine.dispose()


def _state(script: ScriptDirectory, connection: sa.Connection, *, compare: bool) -> SchemaState:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": include_name,
            "include_object": _made_on(connection.dialect.name),
        },
    )
    current = tuple(sorted(context.get_current_heads()))
    recorded = _recorded(connection)
    state = SchemaState(
        current=current,
        heads=tuple(sorted(script.get_heads())),
        recorded=recorded,
        unknown=[rev for rev in current if not _known(script, rev)],
    )
    if recorded is not None:
        state.skipped = skipped_revisions(script, current, recorded)
    if compare and current:
        from alembic.autogenerate import compare_metadata

        from nproxy_core.db import import_models

        state.differences = list(_describe(compare_metadata(context, import_models())))
    return state


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Compare and autogenerate leave out the migration bookkeeping tables."""
    return not (type_ == "table" and name in BOOKKEEPING)


def _made_on(dialect: str) -> Any:
    """Leave out indexes that only one other backend has (the trigram index is made on
    PostgreSQL only): the migrations do not make them here, by design."""

    def include_object(item: Any, name: Any, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ != "index" or reflected:
            return True
        using = [key for key in item.dialect_kwargs if key.endswith("_using")]
        return not using or any(key.startswith(f"{dialect}_") for key in using)

    return include_object


def _describe(diffs: list[Any]) -> Iterator[str]:
    """Alembic's diff tuples as sentences: what the database has that the models do not, and
    the other way round."""
    for diff in diffs:
        if isinstance(diff, list):  # modify_* changes of one column come grouped
            yield from _describe(diff)
            continue
        kind = diff[0]
        if kind == "add_table":
            yield f"table {diff[1].name}: in the models, missing from the database"
        elif kind == "remove_table":
            yield f"table {diff[1].name}: in the database, not in the models"
        elif kind == "add_column":
            yield f"column {diff[2]}.{diff[3].name}: in the models, missing from the database"
        elif kind == "remove_column":
            yield f"column {diff[2]}.{diff[3].name}: in the database, not in the models"
        elif kind in ("add_index", "add_constraint"):
            yield f"{_what(diff[1])}: in the models, missing from the database"
        elif kind in ("remove_index", "remove_constraint"):
            yield f"{_what(diff[1])}: in the database, not in the models"
        elif kind in ("add_fk", "remove_fk"):
            where = "in the models, missing from the database"
            if kind == "remove_fk":
                where = "in the database, not in the models"
            yield f"foreign key {diff[1].name} on {diff[1].parent.name}: {where}"
        elif kind.startswith("modify_"):
            _, _, table, column, _, old, new = diff
            what = kind.removeprefix("modify_").replace("_", " ")
            yield (
                f"column {table}.{column}: {what} is {old!r} in the database, {new!r} in the models"
            )
        else:
            yield f"{kind}: {diff[1:]!r}"


def _what(item: Any) -> str:
    table = getattr(item, "table", None)
    on = f" on {table.name}" if table is not None else ""
    kind = "index" if isinstance(item, sa.Index) else "constraint"
    return f"{kind} {item.name}{on}"


def upgrade(settings: dict[str, Any], revision: str = "heads") -> tuple[str, ...]:
    """Migrate to ``revision``; return the revisions the database is at afterwards.

    Refuses (:class:`SchemaError`, naming them) when revisions below the database's were never
    applied, before migrating when the record says so, or after the migration that starts the
    record finds one missing. Alembic would report success and leave them out.
    """
    state = inspect_schema(settings, compare=False)
    _refuse_skipped(state)
    command.upgrade(alembic_config(settings), revision)
    state = inspect_schema(settings, compare=False)
    _refuse_skipped(state)
    return state.current


def _refuse_skipped(state: SchemaState) -> None:
    if state.skipped:
        raise SchemaError(
            f"the database never ran revision(s) {', '.join(state.skipped)}, which the history "
            f"places below its revision {', '.join(state.current)} (a reordered history); "
            "nothing was migrated. Back up the database, then `nproxy db upgrade "
            "--apply-skipped` runs them"
        )


def apply_skipped(settings: dict[str, Any]) -> list[str]:
    """Run the skipped revisions' upgrades, oldest first, in one transaction, and record them.

    Alembic cannot: it only moves heads. Each revision's ``upgrade()`` runs as Alembic would run
    it; one that conflicts with what later revisions did fails, and nothing is kept.
    """
    from alembic.operations import Operations

    from nproxy_core.db import create_engine

    script = script_directory(settings)
    engine = create_engine(settings)
    try:
        with engine.begin() as connection:
            state = _state(script, connection, compare=False)
            if state.recorded is None or not state.skipped:
                return []
            context = MigrationContext.configure(
                connection, opts={"render_as_batch": connection.dialect.name == "sqlite"}
            )
            with Operations.context(context):
                for rev in state.skipped:
                    script.get_revision(rev).module.upgrade()
            connection.execute(sa.insert(_applied), [{"revision": r} for r in state.skipped])
            return state.skipped
    finally:
        engine.dispose()
