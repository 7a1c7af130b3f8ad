"""``nproxy pair`` and ``nproxy telegram``: who may use the admin bot, from the console."""

from __future__ import annotations

import click

from nproxy_core.audit import Actor, Surface
from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli
from nproxy_core.telegram import pairing

CONSOLE = Actor("console", Surface.CLI)


def _who(item: pairing.TelegramPairing | pairing.TelegramAdmin) -> str:
    username = f"@{item.username}" if item.username else "(no username)"
    # Names come from Telegram users: printed with their control characters made visible.
    name = (item.name or "(no name)").encode("unicode_escape").decode("ascii")
    return f"Telegram id {item.telegram_id}, {username}, {name}"


@main.command("pair")
@click.argument("code")
@click.option("--yes", is_flag=True, help="Pair without asking for confirmation.")
@click.option("--as", "as_email", metavar="EMAIL", help="Link to this admin account.")
@pass_cli
def pair(cli: CLIContext, code: str, yes: bool, as_email: str | None) -> None:
    """Give the Telegram user who was shown CODE access to the admin bot."""
    with cli.transaction() as db:
        asking = pairing.find_pairing(db, code)
        click.echo(f"Pairing request from {_who(asking)}")
        if not yes and not click.confirm("Give this Telegram account admin access?"):
            raise click.ClickException("not paired")
        admin = pairing.complete(db, code, actor=CONSOLE, as_email=as_email)
        linked = f" as {as_email.strip().lower()}" if as_email else ""
        telegram_id = admin.telegram_id
    click.echo(f"Paired Telegram id {telegram_id}{linked}; the bot will tell them shortly.")


@main.group()
def telegram() -> None:
    """Paired Telegram admins and pending pairings."""


@telegram.command("list")
@pass_cli
def telegram_list(cli: CLIContext) -> None:
    """List the paired Telegram admins and the pending pairing codes."""
    with cli.transaction() as db:
        admins = pairing.admins(db)
        waiting = pairing.pending(db)
        if not admins:
            click.echo("No paired Telegram admins.")
        for admin in admins:
            email = f" linked to user {admin.user_id}" if admin.user_id else ""
            click.echo(
                f"{_who(admin)}{email}; paired {admin.paired_at:%Y-%m-%d %H:%M} UTC "
                f"by {admin.paired_by}"
            )
        for item in waiting:
            click.echo(f"pending: {_who(item)}; expires {item.expires_at:%H:%M} UTC")


@telegram.command("pending")
@pass_cli
def telegram_pending(cli: CLIContext) -> None:
    """List who is waiting with a pairing code (never the codes: those prove who asked)."""
    with cli.transaction() as db:
        waiting = pairing.pending(db)
        if not waiting:
            click.echo("No pairing codes are waiting.")
            return
        for item in waiting:
            click.echo(
                f"{_who(item)}; asked {item.created_at:%Y-%m-%d %H:%M} UTC, "
                f"expires {item.expires_at:%Y-%m-%d %H:%M} UTC"
            )
        click.echo(f"{len(waiting)} of at most {pairing.MAX_PENDING} codes waiting.")


@telegram.command("clear")
@pass_cli
def telegram_clear(cli: CLIContext) -> None:
    """Drop every pending pairing code (their askers may ask the bot again)."""
    with cli.transaction() as db:
        dropped = pairing.clear(db, actor=CONSOLE)
    click.echo(f"Dropped {dropped} pending pairing code{'' if dropped == 1 else 's'}.")


@telegram.command("revoke")
@click.argument("telegram_id", type=int)
@pass_cli
def telegram_revoke(cli: CLIContext, telegram_id: int) -> None:
    """End a Telegram admin's access to the bot."""
    with cli.transaction() as db:
        pairing.revoke(db, telegram_id, actor=CONSOLE)
    click.echo(f"Revoked Telegram id {telegram_id}.")
