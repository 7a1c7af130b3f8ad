"""The foundation's commands: ``db`` (the schema), ``worker`` and ``beat`` (the processes)."""

from __future__ import annotations

import os
from typing import Any

import click

from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli
from nproxy_core.tasks import CELERY_APP, size_worker_threads, worker_concurrency


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
@click.option(
    "--apply-skipped",
    is_flag=True,
    help="First run the revisions a reordered history left out (back up the database first).",
)
@pass_cli
def db_upgrade(cli: CLIContext, revision: str, apply_skipped: bool) -> None:
    """Migrate the database schema (alembic upgrade); refuses when revisions were skipped."""
    from nproxy_core import migrations

    try:
        if apply_skipped:
            for applied in migrations.apply_skipped(cli.settings):
                click.echo(f"applied skipped revision {applied}")
        reached = migrations.upgrade(cli.settings, revision)
    except migrations.SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"database upgraded to {', '.join(reached)}")


@db.command("current")
@pass_cli
def db_current(cli: CLIContext) -> None:
    """Print the database's schema revision(s) and whether they are the code's head."""
    from nproxy_core import migrations

    state = migrations.inspect_schema(cli.settings, compare=False)
    if not state.current:
        click.echo("no revision: the database has no schema (nproxy db upgrade makes it)")
    for revision in state.current:
        where = "head" if revision in state.heads else "not head"
        click.echo(f"{revision} ({where})")
    if state.current and not state.at_head:
        click.echo(f"the code's head: {', '.join(state.heads)}")


@db.command("check")
@pass_cli
def db_check(cli: CLIContext) -> None:
    """Exit non-zero, one line per problem, unless every revision below the database's ran
    and its schema matches the models."""
    from nproxy_core import migrations

    state = migrations.inspect_schema(cli.settings)
    problems = state.problems()
    if problems:
        for line in problems:
            click.echo(line, err=True)
        raise SystemExit(1)
    click.echo(f"schema matches the models at {', '.join(state.current)}")


@main.command("worker")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Tasks in flight (default: the setting nproxy.worker.concurrency, 256).",
)
@click.option("--loglevel", default="INFO", show_default=True)
@pass_cli
def worker(cli: CLIContext, concurrency: int | None, loglevel: str) -> None:
    """Run a Celery worker: generation jobs and notifications (a thread pool: I/O bound)."""
    if concurrency is None:
        concurrency = worker_concurrency(cli.settings)
    size_worker_threads()
    cli.registry[CELERY_APP].worker_main(
        [
            *_quiet_when_json(),
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@main.command("beat")
@click.option("--loglevel", default="INFO", show_default=True)
@pass_cli
def beat(cli: CLIContext, loglevel: str) -> None:
    """Run Celery beat: the periodic jobs (run exactly one)."""
    schedule = beat_schedule_file(cli.settings)
    cli.registry[CELERY_APP].start(
        [*_quiet_when_json(), "beat", f"--loglevel={loglevel}", f"--schedule={schedule}"]
    )


def _quiet_when_json() -> list[str]:
    """No banner when the logs are JSON lines (production's logging): it is plain text."""
    from nproxy_core.logs import writes_json

    return ["--quiet"] if writes_json() else []


def beat_schedule_file(settings: dict[str, Any]) -> str:
    """Where beat keeps its schedule: ``celery.beat_schedule_file``, else ``celerybeat-schedule``
    in the state folder (``nproxy.state_dir``), whose folder is created if missing. Never
    relative to the working directory, which the process may not own (the image's /app)."""
    configured = str(settings.get("celery.beat_schedule_file") or "").strip()
    path = configured or os.path.join(settings["nproxy.state_dir"], "celerybeat-schedule")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(
            f"cannot create {folder} for beat's schedule (nproxy.state_dir, NPROXY_STATE_DIR):"
            f" {exc.strerror}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.ClickException(
            f"{folder} is not writable for beat's schedule (nproxy.state_dir, NPROXY_STATE_DIR)"
        )
    return path
