"""Admin actions on the key pool, shared by every surface (CLI now, web and Telegram later).

Each action runs in the caller's transaction and writes its audit row there, so the change
and its record commit together. Secrets never reach an audit row, a log line or a message.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.audit import Surface, record
from nproxy_core.errors import Conflict, NotFound, ValidationError
from nproxy_core.keypool.crypto import SecretBox, mask_secret
from nproxy_core.keypool.models import KeyState, ProviderKey, Proxy, ProxyState

__all__ = [
    "Actor",
    "add_key",
    "add_proxy",
    "disable_key",
    "get_key",
    "key_view",
    "list_keys",
    "list_proxies",
    "proxy_view",
    "restore_key",
]

PROXY_SCHEMES = ("http", "https", "socks5")
MIN_SECRET_LENGTH = 8
MAX_SECRET_LENGTH = 512
_SECRET_SHAPE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: a header value
_LABEL_LIMIT = 100


class Actor:
    """Who acts and from where, as the audit log records it."""

    def __init__(self, name: str, surface: Surface, user_id: int | None = None) -> None:
        self.name = name
        self.surface = surface
        self.user_id = user_id


def _audit(
    db: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    record(
        db,
        actor=actor.name,
        surface=actor.surface,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
        actor_user_id=actor.user_id,
    )


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


def _label(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > _LABEL_LIMIT:
        raise ValidationError(f"label is longer than {_LABEL_LIMIT} characters")
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
    _audit(db, actor, "proxy.add", "proxy", proxy.id, None, proxy_view(proxy))
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
    billing_group: str | None = None,
) -> ProviderKey:
    """Store a new key, encrypted. A proxy URL not known yet is added (and audited) too."""
    enabled = list(enabled_providers)
    if provider not in enabled:
        raise ValidationError(
            f"provider {provider!r} is not enabled (enabled: {', '.join(enabled) or 'none'})"
        )
    secret = validate_secret(secret)
    fingerprint = secrets.fingerprint(secret)
    existing = db.scalar(
        sa.select(ProviderKey.id).where(
            ProviderKey.provider == provider, ProviderKey.secret_fingerprint == fingerprint
        )
    )
    if existing is not None:
        raise Conflict(f"this {provider} key is already in the pool (key {existing})")
    proxy = None
    if proxy_url is not None:
        url = validate_proxy_url(proxy_url)
        proxy = db.scalar(sa.select(Proxy).where(Proxy.url == url))
        if proxy is None:
            proxy = add_proxy(db, url, actor=actor)
    group = _label(billing_group)
    key = ProviderKey(
        provider=provider,
        label=_label(label),
        secret_encrypted=secrets.encrypt(secret),
        secret_fingerprint=fingerprint,
        secret_mask=mask_secret(secret),
        state=KeyState.ACTIVE,
        consecutive_failures=0,
        billing_group=group,
        proxy=proxy,
    )
    db.add(key)
    db.flush()
    _audit(db, actor, "key.add", "provider_key", key.id, None, key_view(key))
    return key


def get_key(db: Session, key_id: int, *, for_update: bool = False) -> ProviderKey:
    query = sa.select(ProviderKey).where(ProviderKey.id == key_id)
    if for_update:
        # The router writes these rows from other processes; hold the row while we change it.
        query = query.with_for_update(of=ProviderKey)
    key = db.scalar(query)
    if key is None:
        raise NotFound(f"no provider key with id {key_id}")
    return key


def restore_key(db: Session, key_id: int, *, actor: Actor) -> ProviderKey:
    """Put a key back in service: active, failures and cooldown cleared."""
    key = get_key(db, key_id, for_update=True)
    if key.state == KeyState.ACTIVE:
        raise Conflict(f"key {key_id} is already active")
    before = key_view(key)
    key.state = KeyState.ACTIVE
    key.state_reason = None
    key.consecutive_failures = 0
    key.cooldown_until = None
    key.version = key.version + 1
    db.flush()
    _audit(db, actor, "key.restore", "provider_key", key.id, before, key_view(key))
    return key


def disable_key(db: Session, key_id: int, *, actor: Actor) -> ProviderKey:
    """Take a key out of service until an admin restores it."""
    key = get_key(db, key_id, for_update=True)
    if key.state == KeyState.DISABLED:
        raise Conflict(f"key {key_id} is already disabled")
    before = key_view(key)
    key.state = KeyState.DISABLED
    key.state_reason = f"disabled by {actor.name}"
    key.version = key.version + 1
    db.flush()
    _audit(db, actor, "key.disable", "provider_key", key.id, before, key_view(key))
    return key


def list_keys(db: Session, provider: str | None = None) -> list[ProviderKey]:
    query = sa.select(ProviderKey).order_by(ProviderKey.provider, ProviderKey.id)
    if provider is not None:
        query = query.where(ProviderKey.provider == provider)
    return list(db.scalars(query))


def list_proxies(db: Session) -> list[Proxy]:
    return list(db.scalars(sa.select(Proxy).order_by(Proxy.id)))
