"""``nproxy backup``: make, list, check and restore backups of the database and every stored
object (DESIGN 4.11). The compose ``backup`` service runs ``create /backups --keep 14 --daily``."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import click

from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli

log = logging.getLogger("nproxy_core.backup")

DAY = 24 * 3600
#: After a failed daily backup, the next try.
RETRY_SECONDS = 3600

FOLDER = click.Path(file_okay=False, path_type=Path)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@main.group()
def backup() -> None:
    """Backups of the database and every stored image."""


@backup.command("create")
@click.argument("folder", type=FOLDER)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Then delete all but the newest N backups in FOLDER.",
)
@click.option("--daily", is_flag=True, help="Make one now and then one every 24 hours, for ever.")
@click.option(
    "--snapshot",
    default=None,
    metavar="ID",
    help="Dump the rows as of a snapshot another session exported (pg_export_snapshot()).",
)
@pass_cli
def backup_create(
    cli: CLIContext, folder: Path, keep: int | None, daily: bool, snapshot: str | None
) -> None:
    """Write a new backup folder under FOLDER: the database (one consistent snapshot, taken
    while the app keeps serving), every stored object, and a manifest with checksums."""
    from nproxy_core.backup.services import BackupError

    settings = cli.settings
    if not daily:
        try:
            _create_once(settings, folder, keep, snapshot, _Say())
        except BackupError as exc:
            raise _fail(exc) from None
        return
    # The compose service: its lines go through logging, so production writes them as JSON.
    say = _Say(log)
    while True:
        try:
            _create_once(settings, folder, keep, snapshot, say)
            pause = DAY
        except Exception as exc:  # a daily loop outlives one failed night
            say.error(f"backup failed: {exc}; next try in {RETRY_SECONDS // 60} minutes")
            pause = RETRY_SECONDS
        time.sleep(pause)


class _Say:
    """Lines for the operator: on the terminal, or through a logger for a service."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger

    def info(self, line: str) -> None:
        if self.logger:
            self.logger.info(line)
        else:
            click.echo(line)

    def error(self, line: str) -> None:
        if self.logger:
            self.logger.error(line)
        else:
            click.echo(line, err=True)


def _create_once(
    settings: dict, folder: Path, keep: int | None, snapshot: str | None, say: _Say
) -> None:
    from nproxy_core.backup.services import create_backup, prune_backups

    made = create_backup(settings, folder, snapshot=snapshot)
    tables = made.manifest["database"]["tables"]
    objects = made.manifest["storage"]["objects"]
    say.info(
        f"wrote {made.path} ({len(tables)} tables, {made.rows} rows, {len(objects)} objects, "
        f"{_size(made.size)})"
    )
    missing = made.manifest["storage"]["missing"]
    if missing:
        say.error(
            f"warning: {len(missing)} objects named by rows were not in storage "
            f"(deleted while the backup ran, or lost), e.g. {missing[0]}"
        )
    if keep is not None:
        for path in prune_backups(folder, keep):
            say.info(f"deleted {path}")


@backup.command("list")
@click.argument("folder", type=FOLDER)
@click.option(
    "--max-age",
    type=click.IntRange(min=1),
    default=None,
    metavar="HOURS",
    help="Exit non-zero unless the newest backup is younger than this (a healthcheck).",
)
def backup_list(folder: Path, max_age: int | None) -> None:
    """The backups in FOLDER, oldest first."""
    from nproxy_core.backup.services import list_backups

    backups = list_backups(folder)
    for made in backups:
        click.echo(
            f"{made.name}  {made.created_at:%Y-%m-%d %H:%M:%S}Z  "
            f"nproxy {made.manifest['nproxy_version']}  "
            f"revision {','.join(made.manifest['database']['migration_heads'])}  "
            f"{made.rows} rows  {len(made.manifest['storage']['objects'])} objects  "
            f"{_size(made.size)}"
        )
    if max_age is not None:
        if not backups:
            raise click.ClickException(f"no backup in {folder}")
        age = dt.datetime.now(dt.UTC) - backups[-1].created_at
        if age > dt.timedelta(hours=max_age):
            raise click.ClickException(
                f"the newest backup, {backups[-1].name}, is older than {max_age} hours"
            )


@backup.command("verify")
@click.argument("folder", type=FOLDER)
def backup_verify(folder: Path) -> None:
    """Check that every file of the backup at FOLDER matches its checksum."""
    from nproxy_core.backup.services import BackupError, verify_backup

    try:
        made = verify_backup(folder)
    except BackupError as exc:
        raise _fail(exc) from None
    click.echo(f"{made.name} is whole ({len(made.manifest['files'])} files, {_size(made.size)})")


@backup.command("restore")
@click.argument("folder", type=FOLDER)
@click.option("--yes", is_flag=True, help="Really restore (nothing happens without it).")
@pass_cli
def backup_restore(cli: CLIContext, folder: Path, yes: bool) -> None:
    """Restore the backup at FOLDER into an empty database and an empty storage: its checksums
    are checked first, the schema is migrated to the backup's revision, then rows and objects
    are loaded. Anything but an empty database and storage is refused, and nothing changes."""
    from nproxy_core.backup.services import BackupError, knows_secret, restore_backup

    if not yes:
        raise click.ClickException(
            "restore writes the backup into the configured database and storage: "
            "run it again with --yes"
        )
    try:
        made = restore_backup(cli.settings, folder)
    except BackupError as exc:
        raise _fail(exc) from None
    heads = ", ".join(made.manifest["database"]["migration_heads"])
    if not knows_secret(cli.settings, made):
        click.echo(
            "warning: the backup was made with another NPROXY_SECRET: put that one in "
            "NPROXY_SECRET_PREVIOUS, or the provider keys cannot be decrypted",
            err=True,
        )
    click.echo(
        f"restored {made.name}: {made.rows} rows, "
        f"{len(made.manifest['storage']['objects'])} objects, schema at revision {heads} "
        "(run `nproxy db upgrade` next)"
    )
