"""The foundation's commands: ``db`` (the schema), ``worker`` and ``beat`` (the processes)."""

from __future__ import annotations

import click

from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli
from nproxy_core.tasks import CELERY_APP, size_worker_threads, worker_concurrency


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
@pass_cli
def db_upgrade(cli: CLIContext, revision: str) -> None:
    """Migrate the database schema (alembic upgrade)."""
    from nproxy_core.migrations import upgrade

    upgrade(cli.settings, revision)
    click.echo(f"database upgraded to {revision}")


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
    schedule = cli.settings.get("celery.beat_schedule_file", "var/celerybeat-schedule")
    cli.registry[CELERY_APP].start(["beat", f"--loglevel={loglevel}", f"--schedule={schedule}"])
