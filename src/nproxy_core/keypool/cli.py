"""``nproxy keys`` and ``nproxy proxies``: the key pool from the server console (audited).

Only click is imported at module level: ``nproxy keys --help`` answers without loading the
router, the database or Telegram; each command imports what it uses.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any

import click

from nproxy_core.cli import main
from nproxy_core.cli.context import CLIContext, pass_cli


def _console() -> Any:
    """The operator at the server console, as the audit log names them."""
    from nproxy_core.audit import Actor, Surface

    return Actor("console", Surface.CLI)


def _read_secret() -> str:
    # Never an argument: arguments end up in shell history and in `ps`.
    if sys.stdin.isatty():
        return click.prompt("Key secret", hide_input=True)
    return sys.stdin.readline().strip()


@main.group()
def keys() -> None:
    """Provider API keys."""


@keys.command("add")
@click.option("--provider", required=True, help="Provider entry-point name, e.g. nanobanana.")
@click.option("--label", default=None, help="A name for people.")
@click.option("--proxy", "proxy_url", default=None, metavar="URL", help="Call through this proxy.")
@click.option("--billing-group", default=None, help="Keys paid by the same account.")
@click.option(
    "--project", default=None, help="The provider-side project (Google Cloud project) of the key."
)
@pass_cli
def keys_add(
    cli: CLIContext,
    provider: str,
    label: str | None,
    proxy_url: str | None,
    billing_group: str | None,
    project: str | None,
) -> None:
    """Add a key; its secret is read from standard input."""
    from nproxy_core.errors import ValidationError
    from nproxy_core.keypool import services as pool
    from nproxy_core.keypool.interfaces import ISecretBox
    from nproxy_core.plugin_registry.loader import discover, enabled_names
    from nproxy_core.plugins import PROVIDER_GROUP

    enabled = enabled_names(cli.settings, "nproxy.providers")
    if provider not in enabled:
        if provider in discover(PROVIDER_GROUP):
            raise ValidationError(
                f"provider {provider!r} is installed but not enabled in nproxy.providers"
            )
        raise ValidationError(f"unknown provider {provider!r} (enabled: {', '.join(enabled)})")
    secret = _read_secret()
    with cli.transaction() as db:
        key = pool.add_key(
            db,
            cli.find_service(ISecretBox),
            provider=provider,
            secret=secret,
            enabled_providers=enabled,
            actor=_console(),
            label=label,
            proxy_url=proxy_url,
            billing_group=billing_group,
            project=project,
        )
        click.echo(f"added {key.provider} key {key.id} ({key.secret_mask})")


@keys.command("list")
@click.option("--provider", default=None, help="Only this provider's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def keys_list(cli: CLIContext, provider: str | None, as_json: bool) -> None:
    """List keys (state, cooldown deadline, failures, masked secret, estimated spend), then
    each project: its estimated spend and until when it rests after a rate limit."""
    from nproxy_core.db import utcnow
    from nproxy_core.keypool import services as pool
    from nproxy_core.keypool.projects import project_views

    with cli.transaction() as db:
        keys = pool.list_keys(db, provider)
        views = [pool.key_view(key) for key in keys]
        projects = project_views(keys, utcnow())
    if as_json:
        # Each key carries its project's figures; a key without a project is its own.
        named = {(p["provider"], p["project"]): p for p in projects}
        for v in views:
            project = named.get((v["provider"], v["project"]))
            v["project_estimated_spend"] = (
                project["estimated_spend"] if project else v["estimated_spend"]
            )
            v["project_rests_until"] = project["rests_until"] if project else None
        click.echo(json.dumps(views, indent=2))
        return
    if not views:
        click.echo("no keys")
        return
    click.echo(
        f"{'id':>4}  {'provider':<12} {'label':<16} {'state':<14} {'fails':>5}  "
        f"{'secret':<11} {'project':<14} {'group':<12} {'cooldown until':<20} "
        f"{'spend':>10}  proxy"
    )
    for v in views:
        cooldown = (v["cooldown_until"] or "-")[:19]
        click.echo(
            f"{v['id']:>4}  {v['provider']:<12} {(v['label'] or '-'):<16} {v['state']:<14} "
            f"{v['consecutive_failures']:>5}  {v['secret']:<11} {(v['project'] or '-'):<14} "
            f"{(v['billing_group'] or '-'):<12} {cooldown:<20} "
            f"{_money(v['estimated_spend']):>10}  {v['proxy'] or '-'}"
        )
    if projects:
        click.echo("")
        click.echo(
            f"{'project':<20} {'provider':<12} {'keys':>4} {'in service':>10} "
            f"{'spend':>10}  rests until"
        )
        for p in projects:
            click.echo(
                f"{p['project']:<20} {p['provider']:<12} {len(p['keys']):>4} "
                f"{p['in_service']:>10} {_money(p['estimated_spend']):>10}  "
                f"{(p['rests_until'] or '-')[:19]}"
            )


def _money(amount: str) -> str:
    """An estimated spend for the table: dollars and cents (the JSON keeps every digit)."""
    return f"${Decimal(amount):.2f}"


@keys.command("restore")
@click.argument("key_id", type=int)
@pass_cli
def keys_restore(cli: CLIContext, key_id: int) -> None:
    """Put a key back in service (from cooldown, out of funds, review or disabled)."""
    from nproxy_core.alerts import IAlertNotifier
    from nproxy_core.keypool import services as pool

    with cli.transaction() as db:
        key = pool.restore_key(
            db, key_id, actor=_console(), alerts=cli.find_service(IAlertNotifier)
        )
        click.echo(f"key {key.id} is active")


@keys.command("disable")
@click.argument("key_id", type=int)
@pass_cli
def keys_disable(cli: CLIContext, key_id: int) -> None:
    """Take a key out of service until restored."""
    from nproxy_core.keypool import services as pool

    with cli.transaction() as db:
        key = pool.disable_key(db, key_id, actor=_console())
        click.echo(f"key {key.id} is disabled")


@keys.command("edit")
@click.argument("key_id", type=int)
@click.option("--label", default=None, help="A name for people (empty: none).")
@click.option(
    "--proxy",
    "proxy",
    default=None,
    metavar="ID|URL|none",
    help="Call through this known proxy (its id or URL), or `none` to call directly.",
)
@click.option("--project", default=None, help="The provider-side project (empty: none).")
@click.option("--billing-group", default=None, help="Keys paid by the same account (empty: none).")
@pass_cli
def keys_edit(
    cli: CLIContext,
    key_id: int,
    label: str | None,
    proxy: str | None,
    project: str | None,
    billing_group: str | None,
) -> None:
    """Change a key's label, proxy, project or billing group (the secret never changes)."""
    from nproxy_core.keypool import services as pool

    changes = {
        name: value
        for name, value in (
            ("label", label),
            ("project", project),
            ("billing_group", billing_group),
        )
        if value is not None
    }
    if proxy is None and not changes:
        raise click.UsageError("give at least one of --label, --proxy, --project, --billing-group")
    with cli.transaction() as db:
        if proxy is not None:
            changes["proxy_id"] = _proxy_id(db, proxy)
        key = pool.edit_key(db, key_id, actor=_console(), **changes)
        view = pool.key_view(key)
    click.echo(
        f"key {view['id']}: label {view['label'] or '-'}, proxy {view['proxy'] or 'none'}, "
        f"project {view['project'] or '-'}, billing group {view['billing_group'] or '-'}"
    )


def _proxy_id(db: Any, proxy: str) -> int | None:
    """A proxy named on the command line by id or URL; None for ``none`` (call directly)."""
    from nproxy_core.errors import ValidationError
    from nproxy_core.keypool import services as pool

    if proxy.strip().lower() in ("", "none", "direct"):
        return None
    if proxy.strip().isdigit():
        return pool.get_proxy(db, int(proxy)).id
    url = pool.validate_proxy_url(proxy)
    for known in pool.list_proxies(db):
        if known.url == url:
            return known.id
    raise ValidationError(
        f"no proxy {pool.display_proxy_url(url)}: add it first with `nproxy proxies add`"
    )


@keys.command("delete")
@click.argument("key_id", type=int)
@click.option("--yes", is_flag=True, help="Delete without asking for confirmation.")
@pass_cli
def keys_delete(cli: CLIContext, key_id: int, yes: bool) -> None:
    """Delete a key: it leaves the pool for good (its attempts' history stays).

    Refused while an unfinished generation has used the key.
    """
    from nproxy_core.keypool import services as pool
    from nproxy_core.keypool.interfaces import IKeyUsage

    with cli.transaction() as db:
        key = pool.get_key(db, key_id)
        if not yes and not click.confirm(
            f"Delete {key.provider} key {key.id} ({key.secret_mask})?"
        ):
            raise click.ClickException("not deleted")
        pool.delete_key(db, key_id, actor=_console(), usage=cli.find_service(IKeyUsage))
    click.echo(f"key {key_id} deleted")


@keys.command("test")
@click.argument("key_id", type=int)
@click.option(
    "--generate",
    is_flag=True,
    help="Make one real minimal image (billed) instead of the free check.",
)
@pass_cli
def keys_test(cli: CLIContext, key_id: int, generate: bool) -> None:
    """Test a key: the provider's free check, or one real image. Never restores a key.

    Prints the outcome class; exits non-zero unless the key answered with success.
    """
    from nproxy_core.keypool import services as pool
    from nproxy_core.keypool.interfaces import IKeyPoolRouter

    with cli.transaction() as db:
        result, report = pool.test_key_report(
            db, cli.find_service(IKeyPoolRouter), key_id, generate=generate, actor=_console()
        )
    click.echo(report.text)
    if result.outcome != "success":
        raise SystemExit(1)


@main.group()
def proxies() -> None:
    """Proxies that keys call through."""


@proxies.command("add")
@click.argument("url")
@click.option("--label", default=None, help="A name for people.")
@pass_cli
def proxies_add(cli: CLIContext, url: str, label: str | None) -> None:
    """Add a proxy (http://, https:// or socks5://host:port)."""
    from nproxy_core.keypool import services as pool

    with cli.transaction() as db:
        proxy = pool.add_proxy(db, url, label=label, actor=_console())
        click.echo(f"added proxy {proxy.id} ({pool.display_proxy_url(proxy.url)})")


@proxies.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def proxies_list(cli: CLIContext, as_json: bool) -> None:
    """List proxies and their health."""
    from nproxy_core.keypool import services as pool

    with cli.transaction() as db:
        views = [pool.proxy_view(proxy) for proxy in pool.list_proxies(db)]
    if as_json:
        click.echo(json.dumps(views, indent=2))
        return
    if not views:
        click.echo("no proxies")
        return
    click.echo(f"{'id':>4}  {'state':<9} {'fails':>5}  {'label':<16} url")
    for v in views:
        click.echo(
            f"{v['id']:>4}  {v['state']:<9} {v['consecutive_failures']:>5}  "
            f"{(v['label'] or '-'):<16} {v['url']}"
        )
