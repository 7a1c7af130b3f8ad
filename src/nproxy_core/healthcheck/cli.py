"""``nproxy health web|worker|beat|bot``: the container healthchecks of compose.yml.

Each prints one line and exits 0 when the process is healthy, 1 when it is not. ``web`` asks
the local gunicorn's ``/healthz`` (the port of ``WEB_BIND``, as gunicorn.conf.py binds it);
the others read the heartbeat file their process keeps (:mod:`nproxy_core.healthcheck`), so
they need neither the database nor the broker. Kept light: it runs every half minute.
"""

from __future__ import annotations

import os
import sys

import click

from nproxy_core import healthcheck
from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli

#: gunicorn.conf.py's default bind, when ``WEB_BIND`` is not set.
DEFAULT_WEB_BIND = "0.0.0.0:8000"


@main.command("health")
@click.argument("process", type=click.Choice(["web", *healthcheck.PROCESSES]))
@click.option(
    "--max-age",
    type=click.FloatRange(min=1),
    default=healthcheck.STALE_AFTER_SECONDS,
    show_default=True,
    help="Seconds after which a heartbeat is stale (worker, beat, bot).",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=4.0, show_default=True)
@pass_cli
def health(cli: CLIContext, process: str, max_age: float, timeout: float) -> None:
    """Say whether this container's process is healthy (exit 0) or not (exit 1)."""
    if process == "web":
        healthy, line = _web(timeout)
    else:
        # The environment wins over the ini (config.ENVIRONMENT_OVERRIDES), and the image sets
        # it: then the check reads no ini (importing Pyramid is most of its second).
        state_dir = os.environ.get("NPROXY_STATE_DIR") or cli.settings["nproxy.state_dir"]
        path = healthcheck.heartbeat_path({"nproxy.state_dir": state_dir}, process)
        healthy, line = healthcheck.check(path, max_age)
    click.echo(f"{process}: {line}", err=not healthy)
    sys.exit(0 if healthy else 1)


def _web(timeout: float) -> tuple[bool, str]:
    import urllib.error
    import urllib.request

    port = os.environ.get("WEB_BIND", DEFAULT_WEB_BIND).rsplit(":", 1)[-1]
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return True, f"{url} answered {answer.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        return False, f"no answer from {url} ({reason})"
