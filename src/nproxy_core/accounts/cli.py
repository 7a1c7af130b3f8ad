"""``nproxy users``: accounts from the server console (audited, surface ``cli``)."""

from __future__ import annotations

import sys
from typing import Any

import click

from nproxy_core.accounts import actions
from nproxy_core.accounts.models import Role
from nproxy_core.accounts.services import create_user
from nproxy_core.audit import Actor, Surface
from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli

#: The operator at the server console, as the audit log names them.
CONSOLE = Actor("console", Surface.CLI)


@main.group()
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
        CONSOLE.record(
            session,
            "user.create",
            "user",
            user.id,
            after={"email": user.email, "role": str(user.role)},
        )
        click.echo(f"created {user.role} {user.email} (id {user.id})")


def _change(cli: CLIContext, email: str, change: Any, done: str) -> None:
    with cli.transaction() as session:
        user = actions.user_by_email(session, email)
        change(session, user.id, actor=CONSOLE)
        click.echo(f"{done} {user.email}")


@users.command("block")
@click.argument("email")
@pass_cli
def users_block(cli: CLIContext, email: str) -> None:
    """Block an account: it cannot log in, and its sessions end."""
    _change(cli, email, actions.block_user, "blocked")


@users.command("unblock")
@click.argument("email")
@pass_cli
def users_unblock(cli: CLIContext, email: str) -> None:
    """Let a blocked account log in again."""
    _change(cli, email, actions.unblock_user, "unblocked")


@users.command("reset-2fa")
@click.argument("email")
@pass_cli
def users_reset_2fa(cli: CLIContext, email: str) -> None:
    """Turn off two-factor login for an account that lost its phone and recovery codes; its
    password alone logs in again, and it can set up a new app."""
    from nproxy_core.accounts.interfaces import ISecondFactor

    with cli.transaction() as session:
        user = actions.user_by_email(session, email)
        cli.find_service(ISecondFactor).reset(session, user.id, actor=CONSOLE)
        click.echo(f"two-factor login reset for {user.email}: the password alone logs in")
