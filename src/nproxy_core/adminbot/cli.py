"""``nproxy bot``: the Telegram admin bot process (one instance)."""

from __future__ import annotations

import click

from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli


@main.command("bot")
@pass_cli
def bot(cli: CLIContext) -> None:
    """Run the Telegram admin bot (long polling) until interrupted."""
    from nproxy_core.adminbot.bot import BotConfigError, run

    try:
        run(cli.registry)
    except BotConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
