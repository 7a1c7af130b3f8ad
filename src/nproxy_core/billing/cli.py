"""``nproxy users grant-cycle``: a free cycle from the server console (audited, surface ``cli``)."""

from __future__ import annotations

import click

from nproxy_core.accounts import actions
from nproxy_core.accounts.cli import CONSOLE, users
from nproxy_core.billing.grants import grant_cycle
from nproxy_core.billing.interfaces import IPlan
from nproxy_core.cli.context import CLIContext, pass_cli


@users.command("grant-cycle")
@click.argument("email")
@click.option("--reason", required=True, help="Why the cycle is free; kept with it and audited.")
@pass_cli
def users_grant_cycle(cli: CLIContext, email: str, reason: str) -> None:
    """Give an account one cycle of the plan, free of charge."""
    with cli.transaction() as session:
        user = actions.user_by_email(session, email)
        cycle = grant_cycle(session, cli.find_service(IPlan), user.id, reason=reason, actor=CONSOLE)
        click.echo(
            f"granted {user.email} a cycle from {cycle.starts_at:%Y-%m-%d %H:%M} to "
            f"{cycle.ends_at:%Y-%m-%d %H:%M} UTC ({cycle.request_limit} requests)"
        )
