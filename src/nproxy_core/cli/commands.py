"""The foundation's commands: ``db``, ``users``, ``plugins`` and ``dev``."""

from __future__ import annotations

import sys

import click

from nproxy_core.accounts.models import Role
from nproxy_core.accounts.services import create_user
from nproxy_core.audit import Surface, record
from nproxy_core.cli.context import CLIContext, pass_cli
from nproxy_core.plugins import PAYMENT_GROUP, PROVIDER_GROUP, discover, enabled_names


@click.group()
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


@click.group()
def users() -> None:
    """User accounts."""


@users.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Give the account the admin role.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_cli
def users_create(cli: CLIContext, email: str, admin: bool, password_stdin: bool) -> None:
    """Create a user account (the password is never an argument)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    role = Role.ADMIN if admin else Role.USER
    with cli.transaction() as session:
        user = create_user(session, email, password, role=role)
        record(
            session,
            actor="console",
            surface=Surface.CLI,
            action="user.create",
            target_type="user",
            target_id=user.id,
            after={"email": user.email, "role": str(user.role)},
        )
        click.echo(f"created {user.role} {user.email} (id {user.id})")


@click.command("plugins")
@pass_cli
def plugins(cli: CLIContext) -> None:
    """List discovered providers and payment processors, and which are enabled."""
    problems = []
    for title, group, key in (
        ("providers", PROVIDER_GROUP, "nproxy.providers"),
        ("payment processors", PAYMENT_GROUP, "nproxy.payments"),
    ):
        enabled = set(enabled_names(cli.settings, key))
        found = discover(group)
        click.echo(f"{title} ({group}):")
        if not found:
            click.echo("  (none)")
        for name, ep in found.items():
            dist = ep.dist.name if ep.dist else "?"
            state = "enabled" if name in enabled else "available"
            if name in enabled:
                try:
                    ep.load()
                except Exception as exc:  # report, whatever a broken plugin raises
                    state = "BROKEN"
                    problems.append(f"plugin {name!r} failed to load: {exc}")
            click.echo(f"  {name:<16} {state:<10} {ep.value}  [{dist}]")
        for name in sorted(enabled - set(found)):
            click.echo(f"  {name:<16} MISSING    named in {key} but not installed")
            problems.append(f"plugin {name!r} named in {key} is not installed")
    if problems:
        raise click.ClickException("; ".join(problems))


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=6543, show_default=True, type=int)
@pass_cli
def dev(cli: CLIContext, host: str, port: int) -> None:
    """Run the embedded default: migrate, then serve the web app (and the worker)."""
    from nproxy_core.devserver import serve
    from nproxy_core.migrations import upgrade

    # Links in mail and payment callbacks must point at where this server really listens.
    cli.raw_settings["nproxy.public_url"] = f"http://{host}:{port}"
    upgrade(cli.settings)
    serve(cli, host=host, port=port)


@click.command("worker")
@click.option("--concurrency", default=64, show_default=True, help="Threads in flight.")
@click.option("--loglevel", default="INFO", show_default=True)
@pass_cli
def worker(cli: CLIContext, concurrency: int, loglevel: str) -> None:
    """Run a Celery worker: generation jobs and notifications (a thread pool: I/O bound)."""
    from nproxy_core.tasks import get_celery_app

    cli.registry  # noqa: B018 - building the registry builds the Celery app
    get_celery_app().worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@click.command("beat")
@click.option("--loglevel", default="INFO", show_default=True)
@pass_cli
def beat(cli: CLIContext, loglevel: str) -> None:
    """Run Celery beat: the periodic jobs (run exactly one)."""
    from nproxy_core.tasks import get_celery_app

    cli.registry  # noqa: B018 - building the registry builds the Celery app
    schedule = cli.settings.get("celery.beat_schedule_file", "var/celerybeat-schedule")
    get_celery_app().start(["beat", f"--loglevel={loglevel}", f"--schedule={schedule}"])
