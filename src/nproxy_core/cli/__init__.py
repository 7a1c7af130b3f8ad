"""The ``nproxy`` command: one click group; each feature adds its own commands to it."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from nproxy_core.cli.context import CLIContext
from nproxy_core.config import ConfigurationError
from nproxy_core.errors import APIError

log = logging.getLogger(__name__)


class NproxyGroup(click.Group):
    """Turns every failure into one clear line and a non-zero exit, never a traceback."""

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


def _register() -> None:
    from nproxy_core.cli.commands import beat, db, dev, plugins, users, worker
    from nproxy_core.keypool.cli import keys, proxies

    for command in (db, users, plugins, dev, worker, beat, keys, proxies):
        main.add_command(command)


_register()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
