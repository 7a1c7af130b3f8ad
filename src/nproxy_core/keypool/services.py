"""Admin actions on the key pool, shared by every surface (web admin, Telegram bot, CLI).

Each action runs in the caller's transaction and writes its one audit row there, so the change
and its record commit together; a refused action raises before it changes anything. Secrets
never reach an audit row, a log line or a message.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.alerts import AlertKind, IAlertNotifier
from nproxy_core.audit import Actor
from nproxy_core.db import utcnow
from nproxy_core.errors import Conflict, NotFound, ValidationError
from nproxy_core.keypool.alerts import key_subject
from nproxy_core.keypool.checks import KeyTestReport, report_key_test
from nproxy_core.keypool.crypto import SecretBox, mask_secret
from nproxy_core.keypool.interfaces import IKeyUsage
from nproxy_core.keypool.models import IN_SERVICE, KeyState, ProviderKey, Proxy, ProxyState
from nproxy_core.keypool.rotation import check_new_secret
from nproxy_core.keypool.router import (
    KeyPoolRouter,
    KeyTest,
    KeyTestUnsupported,
    ProviderNotEnabled,
    RouteCheck,
)
from nproxy_core.keypool.rules import PROJECT_REST

__all__ = [
    "Actor",
    "add_key",
    "add_proxy",
    "delete_key",
    "disable_key",
    "disable_proxy",
    "edit_key",
    "enable_proxy",
    "get_key",
    "get_proxy",
    "key_view",
    "list_keys",
    "list_proxies",
    "proxy_view",
    "report_key_test",
    "restore_key",
    "test_key",
    "test_key_report",
    "test_proxy",
]

PROXY_SCHEMES = ("http", "https", "socks5")
MIN_SECRET_LENGTH = 8
MAX_SECRET_LENGTH = 512
_SECRET_SHAPE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: a header value
_LABEL_LIMIT = 100
_NAME_SHAPE = re.compile(r"^[^\x00-\x1f\x7f]*$")  # no control characters (NUL included)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def key_view(key: ProviderKey) -> dict[str, Any]:
    """What admins may see of a key (and what audit rows keep): never the secret."""
    return {
        "id": key.id,
        "provider": key.provider,
        "label": key.label,
        "state": str(key.state),
        "state_reason": key.state_reason,
        "cooldown_until": _iso(key.cooldown_until),
        "consecutive_failures": key.consecutive_failures,
        "secret": key.secret_mask,
        "billing_group": key.billing_group,
        "project": key.project,
        "proxy_id": key.proxy_id,
        "proxy": display_proxy_url(key.proxy.url) if key.proxy is not None else None,
        "balance": None if key.balance is None else str(key.balance),
        "estimated_spend": str(key.estimated_spend),
        "last_used_at": _iso(key.last_used_at),
    }


def proxy_view(proxy: Proxy) -> dict[str, Any]:
    return {
        "id": proxy.id,
        "url": display_proxy_url(proxy.url),
        "label": proxy.label,
        "state": str(proxy.state),
        "consecutive_failures": proxy.consecutive_failures,
        "total_failures": proxy.total_failures,
        "last_error": proxy.last_error,
        "last_ok_at": _iso(proxy.last_ok_at),
        "last_failure_at": _iso(proxy.last_failure_at),
    }


def display_proxy_url(url: str) -> str:
    """A proxy URL with its password hidden (proxies often carry credentials)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def _label(value: str | None, field: str = "label") -> str | None:
    """A short optional name (label, project, billing group): stripped, empty as None."""
    if value is None:
        return None
    value = value.strip()
    if len(value) > _LABEL_LIMIT:
        raise ValidationError(f"{field} is longer than {_LABEL_LIMIT} characters")
    if not _NAME_SHAPE.match(value):
        raise ValidationError(f"{field} contains control characters")
    return value or None


def validate_proxy_url(url: str) -> str:
    """An http, https or socks5 URL with a host and port, or :class:`ValidationError`."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(f"proxy URL {display_proxy_url_safe(url)!r} is malformed") from None
    if parts.scheme not in PROXY_SCHEMES:
        raise ValidationError(
            f"proxy URL must start with {', '.join(s + '://' for s in PROXY_SCHEMES)}"
        )
    if not parts.hostname:
        raise ValidationError("proxy URL has no host")
    if port is None:
        raise ValidationError("proxy URL has no port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValidationError("proxy URL must be scheme://[user:password@]host:port only")
    return url.rstrip("/")


def display_proxy_url_safe(url: str) -> str:
    try:
        return display_proxy_url(url)
    except ValueError:
        return "<unparseable>"


def validate_secret(secret: str) -> str:
    secret = (secret or "").strip()
    if not secret:
        raise ValidationError("the key secret is empty")
    if not _SECRET_SHAPE.fullmatch(secret):
        raise ValidationError("the key secret contains spaces or characters a key cannot have")
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise ValidationError(
            f"the key secret must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters"
        )
    return secret


def add_proxy(db: Session, url: str, *, label: str | None = None, actor: Actor) -> Proxy:
    url = validate_proxy_url(url)
    if db.scalar(sa.select(Proxy.id).where(Proxy.url == url)) is not None:
        raise Conflict(f"proxy {display_proxy_url(url)} already exists")
    proxy = Proxy(url=url, label=_label(label), state=ProxyState.ACTIVE)
    db.add(proxy)
    db.flush()
    actor.record(db, "proxy.add", "proxy", proxy.id, None, proxy_view(proxy))
    return proxy


def add_key(
    db: Session,
    secrets: SecretBox,
    *,
    provider: str,
    secret: str,
    enabled_providers: Iterable[str],
    actor: Actor,
    label: str | None = None,
    proxy_url: str | None = None,
    proxy_id: int | None = None,
    billing_group: str | None = None,
    project: str | None = None,
) -> ProviderKey:
    """Store a new key, encrypted. Its proxy is ``proxy_id`` (a known proxy) or ``proxy_url``;
    a proxy URL not known yet is added (and audited) too."""
    enabled = list(enabled_providers)
    if provider not in enabled:
        raise ValidationError(
            f"provider {provider!r} is not enabled (enabled: {', '.join(enabled) or 'none'})"
        )
    secret = validate_secret(secret)
    # A duplicate is found under the current secret or a previous one (4.11).
    fingerprint = check_new_secret(db, secrets, provider, secret)
    if proxy_url is not None and proxy_id is not None:
        raise ValidationError("give a proxy URL or a known proxy, not both")
    group = _label(billing_group, "billing group")
    project = _label(project, "project")
    label = _label(label)
    proxy = None
    if proxy_id is not None:
        proxy = get_proxy(db, proxy_id)
    elif proxy_url is not None:
        url = validate_proxy_url(proxy_url)
        proxy = db.scalar(sa.select(Proxy).where(Proxy.url == url))
        if proxy is None:
            proxy = add_proxy(db, url, actor=actor)
    rests_until = project_rests_until(db, provider, project)
    key = ProviderKey(
        provider=provider,
        label=label,
        secret_encrypted=secrets.encrypt(secret),
        secret_fingerprint=fingerprint,
        secret_mask=mask_secret(secret),
        state=KeyState.ACTIVE if rests_until is None else KeyState.COOLDOWN,
        cooldown_until=rests_until,
        consecutive_failures=0,
        billing_group=group,
        project=project,
        proxy=proxy,
    )
    db.add(key)
    db.flush()
    actor.record(db, "key.add", "provider_key", key.id, None, key_view(key))
    return key


def project_rests_until(db: Session, provider: str, project: str | None) -> dt.datetime | None:
    """Until when a key joining ``project`` must rest with it, or None.

    A rate limit cools every in-service key of a project to one deadline, so a project none of
    whose in-service keys may be called is resting; a key added to it (or moved into it) would
    only draw the same 429, so it waits until the earliest of those deadlines, when the router
    tries the project again anyway. A project with a key in service is not resting (one key's
    own cooldown after a 5xx is not the project's), and a key without a project is its own.
    """
    if project is None:
        return None
    row = db.execute(
        PROJECT_REST, {"b_provider": provider, "b_project": project, "b_now": utcnow()}
    ).one()
    return row.rests_until if row.in_service else None


def get_key(db: Session, key_id: int, *, for_update: bool = False) -> ProviderKey:
    """A key by id; a deleted key is no longer one (NotFound) for any action."""
    query = sa.select(ProviderKey).where(ProviderKey.id == key_id, ProviderKey.deleted_at.is_(None))
    if for_update:
        # The router writes these rows from other processes; hold the row while we change it.
        query = query.with_for_update(of=ProviderKey)
    key = db.scalar(query)
    if key is None:
        raise NotFound(f"no provider key with id {key_id}")
    return key


def restore_key(db: Session, key_id: int, *, actor: Actor, alerts: IAlertNotifier) -> ProviderKey:
    """Put a key back in service: active, failures and cooldown cleared; its open alerts
    resolve with it (and only if this transaction commits), and the "resolved" messages go
    out right after the commit."""
    key = get_key(db, key_id, for_update=True)
    if key.state == KeyState.ACTIVE:
        raise Conflict(f"{key.name} is already active")
    before = key_view(key)
    key.state = KeyState.ACTIVE
    key.state_reason = None
    key.consecutive_failures = 0
    key.cooldown_until = None
    key.version = key.version + 1
    db.flush()
    actor.record(db, "key.restore", "provider_key", key.id, before, key_view(key))
    subject = key_subject(key.provider, key.id)
    detail = f"{key.name} restored by {actor.name} ({actor.surface})"
    for kind in (AlertKind.KEY_MANUAL_REVIEW, AlertKind.KEY_OUT_OF_FUNDS):
        alerts.resolve(kind, subject, detail, db=db)
    return key


def disable_key(db: Session, key_id: int, *, actor: Actor) -> ProviderKey:
    """Take a key out of service until an admin restores it."""
    key = get_key(db, key_id, for_update=True)
    if key.state == KeyState.DISABLED:
        raise Conflict(f"{key.name} is already disabled")
    before = key_view(key)
    key.state = KeyState.DISABLED
    key.state_reason = f"disabled by {actor.name}"
    key.version = key.version + 1
    db.flush()
    actor.record(db, "key.disable", "provider_key", key.id, before, key_view(key))
    return key


#: What :func:`edit_key` leaves as it is when not given.
UNCHANGED: Any = object()


def edit_key(
    db: Session,
    key_id: int,
    *,
    actor: Actor,
    label: str | None = UNCHANGED,
    proxy_id: int | None = UNCHANGED,
    project: str | None = UNCHANGED,
    billing_group: str | None = UNCHANGED,
) -> ProviderKey:
    """Change a key's label, proxy (a known proxy's id, or None for direct), project or
    billing group. The secret never changes: a new secret is a new key."""
    changes: dict[str, Any] = {}
    if label is not UNCHANGED:
        changes["label"] = _label(label)
    if project is not UNCHANGED:
        changes["project"] = _label(project, "project")
    if billing_group is not UNCHANGED:
        changes["billing_group"] = _label(billing_group, "billing group")
    proxy: Proxy | None = None
    if proxy_id is not UNCHANGED and proxy_id is not None:
        proxy = get_proxy(db, proxy_id)
    key = get_key(db, key_id, for_update=True)
    before = key_view(key)
    changed = {name: value for name, value in changes.items() if getattr(key, name) != value}
    if proxy_id is not UNCHANGED and key.proxy_id != proxy_id:
        changed["proxy_id"] = proxy_id
    if not changed:
        raise Conflict(f"{key.name} already has these settings; nothing changed")
    if "project" in changed and key.state in IN_SERVICE:
        rests_until = project_rests_until(db, key.provider, changed["project"])
        if rests_until is not None and (
            key.cooldown_until is None or key.cooldown_until < rests_until
        ):
            key.state, key.cooldown_until = KeyState.COOLDOWN, rests_until
    for name, value in changed.items():
        setattr(key, name, value)
    if "proxy_id" in changed:
        key.proxy = proxy
    key.version = key.version + 1
    db.flush()
    actor.record(db, "key.edit", "provider_key", key.id, before, key_view(key))
    return key


def delete_key(db: Session, key_id: int, *, actor: Actor, usage: IKeyUsage) -> ProviderKey:
    """Delete a key: refused while a generation that used it is unfinished.

    The row stays, disabled and marked deleted, out of every list and action: its attempts,
    estimated spend, rollups and audit entries keep naming the key they were made with (a
    removed row would take them with it, or leave ids that name nothing). The router never
    chooses a disabled key, and the row lock taken here waits for a claim in progress.
    """
    key = get_key(db, key_id, for_update=True)
    busy = usage.unfinished(db, key_id)
    if busy:
        shown = ", ".join(busy[:3]) + (f" and {len(busy) - 3} more" if len(busy) > 3 else "")
        raise Conflict(
            f"{key.name} is in use by {len(busy)} unfinished generation(s) ({shown}); "
            "disable it and delete it once they finish"
        )
    before = key_view(key)
    key.state = KeyState.DISABLED
    key.state_reason = f"deleted by {actor.name}"
    key.deleted_at = utcnow()
    key.version = key.version + 1
    db.flush()
    actor.record(db, "key.delete", "provider_key", key.id, before, None)
    return key


def test_key(
    db: Session, router: KeyPoolRouter, key_id: int, *, generate: bool, actor: Actor
) -> KeyTest:
    """Test a key (DESIGN 4.5): the provider's free check, or one real minimal image.

    The calls are recorded as attempts by the router, which applies their outcome as it does
    any attempt's, and never restores a key. No lock is held on the key meanwhile: the router
    writes it from its own transactions.
    """
    key = get_key(db, key_id)
    before = key_view(key)
    try:
        result = router.test_key(key_id, generate=generate)
    except ProviderNotEnabled:
        raise ValidationError(
            f"{key.name} belongs to provider {key.provider!r}, which is not enabled"
        ) from None
    except KeyTestUnsupported as exc:
        raise ValidationError(str(exc)) from None
    except LookupError:
        raise NotFound(f"no provider key with id {key_id}") from None
    db.expire(key)
    after = {**key_view(get_key(db, key_id)), "test": result.as_dict()}
    actor.record(db, "key.test", "provider_key", key_id, before, after)
    return result


def test_key_report(
    db: Session, router: KeyPoolRouter, key_id: int, *, generate: bool, actor: Actor
) -> tuple[KeyTest, KeyTestReport]:
    """:func:`test_key`, and its result worded for the admin with the key's state beside it
    (:func:`report_key_test`: web, Telegram and console say the same)."""
    result = test_key(db, router, key_id, generate=generate, actor=actor)
    return result, report_key_test(result, get_key(db, key_id))


def get_proxy(db: Session, proxy_id: int, *, for_update: bool = False) -> Proxy:
    query = sa.select(Proxy).where(Proxy.id == proxy_id)
    if for_update:
        query = query.with_for_update()
    proxy = db.scalar(query)
    if proxy is None:
        raise NotFound(f"no proxy with id {proxy_id}")
    return proxy


def _set_proxy_state(db: Session, proxy_id: int, state: ProxyState, actor: Actor) -> Proxy:
    proxy = get_proxy(db, proxy_id, for_update=True)
    if proxy.state == state:
        raise Conflict(f"proxy {proxy_id} is already {state}")
    before = proxy_view(proxy)
    proxy.state = state
    db.flush()
    action = "proxy.enable" if state == ProxyState.ACTIVE else "proxy.disable"
    actor.record(db, action, "proxy", proxy.id, before, proxy_view(proxy))
    return proxy


def enable_proxy(db: Session, proxy_id: int, *, actor: Actor) -> Proxy:
    """Let keys call through the proxy again."""
    return _set_proxy_state(db, proxy_id, ProxyState.ACTIVE, actor)


def disable_proxy(db: Session, proxy_id: int, *, actor: Actor) -> Proxy:
    """Keys that use the proxy call directly until it is enabled again."""
    return _set_proxy_state(db, proxy_id, ProxyState.DISABLED, actor)


def test_proxy(
    db: Session, router: KeyPoolRouter, proxy_id: int, *, actor: Actor
) -> list[RouteCheck]:
    """Ask every enabled provider to answer over the proxy; its health records the result."""
    proxy = get_proxy(db, proxy_id)
    before = proxy_view(proxy)
    try:
        checks = router.test_proxy(proxy_id)
    except LookupError:
        raise NotFound(f"no proxy with id {proxy_id}") from None
    db.expire(proxy)
    after = {
        **proxy_view(get_proxy(db, proxy_id)),
        "test": [
            {"provider": c.provider, "ok": c.ok, "latency_ms": c.latency_ms, "detail": c.detail}
            for c in checks
        ],
    }
    actor.record(db, "proxy.test", "proxy", proxy_id, before, after)
    return checks


def list_keys(db: Session, provider: str | None = None) -> list[ProviderKey]:
    query = (
        sa.select(ProviderKey)
        .where(ProviderKey.deleted_at.is_(None))
        .order_by(ProviderKey.provider, ProviderKey.id)
    )
    if provider is not None:
        query = query.where(ProviderKey.provider == provider)
    return list(db.scalars(query))


def list_proxies(db: Session) -> list[Proxy]:
    return list(db.scalars(sa.select(Proxy).order_by(Proxy.id)))
