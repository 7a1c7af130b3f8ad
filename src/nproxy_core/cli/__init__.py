"""The ``nproxy`` command: one click group; each feature adds its own commands to it.

A feature's commands live in its ``cli`` module (``nproxy_core.keypool.cli``, …), which
attaches them to :data:`main`. Those modules are found by name when the command starts, as
warehouse finds its own, so no list here names them and this package imports no feature.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys
from typing import Any

import click

from nproxy_core.cli.context import CLIContext
from nproxy_core.config import ConfigurationError
from nproxy_core.errors import APIError

log = logging.getLogger(__name__)


class NproxyGroup(click.Group):
    """Finds the features' commands when asked for one, and turns every failure into one clear
    line and a non-zero exit, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        load_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except ConfigurationError as exc:
            raise click.ClickException(f"configuration error: {exc}") from None
        except APIError as exc:
            raise click.ClickException(exc.message) from None
        except Exception as exc:
            log.debug("command failed", exc_info=True)
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@click.group(cls=NproxyGroup)
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


def load_commands() -> None:
    """Import every feature's ``cli`` module, so that its commands join :data:`main`."""
    if "nproxy_core.cli.commands" in sys.modules:
        return
    import nproxy_core

    importlib.import_module("nproxy_core.cli.commands")
    for module in pkgutil.iter_modules(nproxy_core.__path__, "nproxy_core."):
        if module.ispkg and importlib.util.find_spec(f"{module.name}.cli") is not None:
            importlib.import_module(f"{module.name}.cli")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
