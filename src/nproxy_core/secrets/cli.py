"""``nproxy secrets``: re-encrypt what is stored under an old ``NPROXY_SECRET`` (4.11)."""

from __future__ import annotations

import click

from nproxy_core.alerts import AlertKind, IAlertNotifier
from nproxy_core.audit import Surface
from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.keypool.rotation import UNREADABLE_SUBJECT, rotate_key_secrets
from nproxy_core.keypool.services import Actor

CONSOLE = Actor("console", Surface.CLI)


@main.group("secrets")
def secrets_group() -> None:
    """The server secret (NPROXY_SECRET) and its previous values (NPROXY_SECRET_PREVIOUS)."""


@secrets_group.command("rotate")
@pass_cli
def secrets_rotate(cli: CLIContext) -> None:
    """Re-encrypt every stored provider key and two-factor secret with the current
    NPROXY_SECRET.

    Keys stored under a secret listed in NPROXY_SECRET_PREVIOUS are re-encrypted and
    re-fingerprinted, in one transaction; running it again changes nothing. Nothing changes
    when a key cannot be read with any known secret.
    """
    from nproxy_core.twofactor.services import rotate_totp_secrets

    with cli.transaction() as db:
        report = rotate_key_secrets(db, cli.find_service(ISecretBox))
        # Two-factor secrets are kept under the same secret: an admin who has not logged in
        # since must not be locked out when the old one is dropped.
        totp = rotate_totp_secrets(db, cli.find_service(ISecretBox))
        CONSOLE.record(
            db,
            "secrets.rotate",
            "provider_keys",
            None,
            None,
            {"re-encrypted": report.rotated, "already current": report.current},
        )
        # Every key reads again: the configuration fault the router raised is over.
        cli.find_service(IAlertNotifier).resolve(
            AlertKind.KEY_UNREADABLE,
            UNREADABLE_SUBJECT,
            "every provider key is readable and encrypted with the current secret",
            db=db,
        )
    skipped = f", {report.skipped} deleted left unreadable" if report.skipped else ""
    click.echo(
        f"provider keys: {report.rotated} re-encrypted with the current secret, "
        f"{report.current} already current ({report.total} in all{skipped})"
    )
    click.echo(
        f"two-factor secrets: {totp.rotated} re-encrypted with the current secret, "
        f"{totp.current} already current"
    )
    if cli.settings["nproxy.secret_previous"]:
        max_age = int(cli.settings["nproxy.session_max_age_seconds"]) // 86400
        click.echo(
            "NPROXY_SECRET_PREVIOUS is still needed by sessions and signed links made before "
            f"the change (sessions last up to {max_age} days) and by developer API keys not "
            "used since (each is re-hashed with the current secret on its next use); remove "
            "it after that."
        )
