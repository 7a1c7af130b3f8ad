"""The ``nproxy`` command: one click group; each feature adds its own commands to it.

A feature's commands live in its ``cli`` module (``nproxy_core.keypool.cli``, …), which
attaches them to :data:`main`. Those modules are found by file name and read without being
imported (:mod:`nproxy_core.cli.index`), so ``nproxy --help`` names every command without
loading a feature, and a command imports only the modules that define it. This package imports
no feature, and nothing heavier than click at module level.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from nproxy_core.cli.context import CLIContext

DISTRIBUTION = "nproxy"


class NproxyGroup(click.Group):
    """Loads a feature's commands when one of them is asked for, and turns every failure into
    one clear line and a non-zero exit, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from nproxy_core.cli import index

        return sorted(set(index.build().commands) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            from nproxy_core.cli import index

            modules = index.build().modules_for(cmd_name)
            for module in modules:
                importlib.import_module(module)
            if cmd_name not in self.commands:
                # Declared in a way the index cannot read: look everywhere before saying no.
                load_commands()
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the index: short help without importing any feature."""
        from nproxy_core.cli import index

        entries = index.build().commands
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                entry = entries[name]
                command = click.Command(
                    name, help=entry.help, short_help=entry.short_help, hidden=entry.hidden
                )
            if not command.hidden:
                rows.append((name, command))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:
            raise click.ClickException(_one_line(exc)) from None


def _one_line(exc: Exception) -> str:
    import logging

    from nproxy_core.config import ConfigurationError
    from nproxy_core.errors import APIError

    if isinstance(exc, ConfigurationError):
        return f"configuration error: {exc}"
    if isinstance(exc, APIError):
        return exc.message
    logging.getLogger(__name__).debug("command failed", exc_info=True)
    return f"{type(exc).__name__}: {exc}"


@click.group(cls=NproxyGroup)
@click.version_option(package_name=DISTRIBUTION, message="nproxy %(version)s")
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="INI",
    default=lambda: os.environ.get("NPROXY_CONFIG", "development.ini"),
    show_default="$NPROXY_CONFIG, else development.ini",
    help="The ini file to read settings from.",
)
@click.pass_context
def main(ctx: click.Context, config_path: str) -> None:
    """nproxy: AI image generation behind a monthly crypto subscription."""
    ctx.obj = CLIContext(config_path)
    ctx.call_on_close(ctx.obj.close)


def load_commands() -> None:
    """Import every module that adds commands, so that all of them join :data:`main`."""
    from nproxy_core.cli import index

    for module in index.cli_modules():
        importlib.import_module(module)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
