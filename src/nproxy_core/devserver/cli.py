"""``nproxy dev``: the embedded default from the command line."""

from __future__ import annotations

import click

from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli
from nproxy_core.devserver import serve


@main.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=6543, show_default=True, type=int)
@pass_cli
def dev(cli: CLIContext, host: str, port: int) -> None:
    """Run the embedded default: migrate, then serve the web app (and the worker)."""
    from nproxy_core.migrations import upgrade

    # Links in mail and payment callbacks must point at where this server really listens.
    cli.raw_settings["nproxy.public_url"] = f"http://{host}:{port}"
    upgrade(cli.settings)
    serve(cli, host=host, port=port)
