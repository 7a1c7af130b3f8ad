"""``nproxy plugins``: which plugins are installed, which are enabled, and which are broken."""

from __future__ import annotations

import click

from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli
from nproxy_core.plugin_registry.loader import discover, enabled_names
from nproxy_core.plugins import (
    CONTRACT_VERSION,
    PAYMENT_GROUP,
    PROVIDER_GROUP,
    PluginError,
    check_contract,
)


@main.command("plugins")
@pass_cli
def plugins(cli: CLIContext) -> None:
    """List discovered providers and payment processors, and which are enabled.

    An enabled plugin that fails to load is BROKEN; one written for another major version of
    the plugin contract is REFUSED (this nproxy speaks the version in the first line).
    """
    click.echo(f"plugin contract {CONTRACT_VERSION}")
    problems = []
    for title, group, key in (
        ("providers", PROVIDER_GROUP, "nproxy.providers"),
        ("payment processors", PAYMENT_GROUP, "nproxy.payments"),
    ):
        enabled = set(enabled_names(cli.settings, key))
        found = discover(group)
        click.echo(f"{title} ({group}):")
        if not found:
            click.echo("  (none)")
        for name, ep in found.items():
            dist = ep.dist.name if ep.dist else "?"
            state = "enabled" if name in enabled else "available"
            if name in enabled:
                try:
                    cls = ep.load()
                except Exception as exc:  # report, whatever a broken plugin raises
                    state = "BROKEN"
                    problems.append(f"plugin {name!r} failed to load: {exc}")
                else:
                    declared = getattr(cls, "contract_version", CONTRACT_VERSION)
                    try:
                        check_contract(name, group, declared)
                    except PluginError as exc:
                        state = "REFUSED"
                        problems.append(str(exc))
            click.echo(f"  {name:<16} {state:<10} {ep.value}  [{dist}]")
        for name in sorted(enabled - set(found)):
            click.echo(f"  {name:<16} MISSING    named in {key} but not installed")
            problems.append(f"plugin {name!r} named in {key} is not installed")
    if problems:
        raise click.ClickException("; ".join(problems))
