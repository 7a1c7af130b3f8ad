"""API keys (DESIGN 4.10): made, listed, revoked, and recognised on each request.

The secret is ``npx_`` and 40 random URL-safe characters: with that much entropy a fast keyed
hash is as safe as a slow password hash, and cheap enough for every request. Only the hash is
stored (HMAC-SHA256, keyed with a key derived from ``nproxy.secret``, so a leaked table is no
use without the server's secret), with the first characters as a visible prefix that also finds
the row; the hash is then compared in constant time.

Across a change of ``nproxy.secret`` (4.11) a key is recognised by its hash under the current
secret or any of ``nproxy.secret_previous``, and a key found under an old one is re-hashed with
the current one on that use (only the plaintext can be re-hashed, so ``nproxy secrets rotate``
cannot do it for keys that are not used).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.accounts.models import User
from nproxy_core.audit import Actor
from nproxy_core.db import parse_uuid, utcnow
from nproxy_core.developer_api.interfaces import IApiKeyHasher
from nproxy_core.developer_api.models import ApiKey
from nproxy_core.errors import APIError, Conflict, NotFound, ValidationError
from nproxy_core.i18n import _

SECRET_PREFIX = "npx_"  # noqa: S105 - the public marker of a key, not a secret
SECRET_CHARS = 40
PREFIX_CHARS = len(SECRET_PREFIX) + 8
NAME_MAX_CHARS = 100


class InvalidApiKey(APIError):
    status = 401
    code = "invalid_api_key"

    def __init__(self, message: str = _("The API key is missing, invalid or revoked.")) -> None:
        super().__init__(message)
        self.headers["WWW-Authenticate"] = 'Bearer realm="nproxy"'


@implementer(IApiKeyHasher)
class KeyHasher:
    """Keyed hashing of API key secrets."""

    def __init__(self, server_secrets: str | Sequence[str]) -> None:
        """``server_secrets``: the current secret first, then the previous ones."""
        if isinstance(server_secrets, str):
            server_secrets = (server_secrets,)
        self._keys = [
            hmac.new(s.encode(), b"nproxy api key hashing v1", hashlib.sha256).digest()
            for s in server_secrets
        ]

    def hash(self, secret: str) -> str:
        """The hash stored for a key: keyed with the current secret."""
        return hmac.new(self._keys[0], secret.encode(), hashlib.sha256).hexdigest()

    def hashes(self, secret: str) -> list[str]:
        """The hash under every known secret, the current one first."""
        return [hmac.new(k, secret.encode(), hashlib.sha256).hexdigest() for k in self._keys]


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    #: The whole secret: shown once, never stored.
    secret: str


def key_name(value: Any) -> str:
    if value is None:
        raise ValidationError(_("Give the key a name."), fields={"name": "required"})
    if not isinstance(value, str):
        raise ValidationError(_("The name must be text."), fields={"name": "invalid"})
    name = " ".join(value.split())
    if not name:
        raise ValidationError(_("Give the key a name."), fields={"name": "required"})
    if len(name) > NAME_MAX_CHARS or not name.isprintable():
        raise ValidationError(
            _(
                "The name must be printable text of at most ${limit} characters.",
                mapping={"limit": NAME_MAX_CHARS},
            ),
            fields={"name": "invalid"},
        )
    return name


def live_keys(db: Session, user_id: int) -> list[ApiKey]:
    return list(
        db.scalars(
            sa.select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc())
        )
    )


def create_key(db: Session, hasher: KeyHasher, user_id: int, name: Any, *, max_keys: int) -> NewKey:
    """A new key for the user, or Conflict when they already have ``max_keys`` live ones."""
    name = key_name(name)
    # The user's row is locked so two concurrent creations cannot both pass the count.
    db.execute(sa.select(User.id).where(User.id == user_id).with_for_update())
    count = db.scalar(
        sa.select(sa.func.count())
        .select_from(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    )
    if count >= max_keys:
        raise Conflict(
            _(
                "You already have ${count} API keys, the most allowed. Revoke one first.",
                mapping={"count": max_keys},
            ),
            fields={"name": "too_many_keys"},
        )
    secret = SECRET_PREFIX + secrets.token_urlsafe(30)[:SECRET_CHARS]
    key = ApiKey(
        id=uuid.uuid4(),
        user_id=user_id,
        name=name,
        prefix=secret[:PREFIX_CHARS],
        secret_hash=hasher.hash(secret),
        created_at=utcnow(),
    )
    db.add(key)
    db.flush()
    return NewKey(key, secret)


def _users_key(db: Session, user_id: int, key_id: Any, *, lock: bool = False) -> ApiKey | None:
    """The user's key of id ``key_id`` (any text), or None for a malformed id or another's key."""
    kid = parse_uuid(key_id)
    key = None if kid is None else db.get(ApiKey, kid, with_for_update=lock)
    return key if key is not None and key.user_id == user_id else None


def revoke_key(db: Session, user_id: int, key_id: Any) -> ApiKey:
    """Revoke one of the user's keys (again is harmless); NotFound for anyone else's."""
    key = _users_key(db, user_id, key_id)
    if key is None:
        raise NotFound(_("Not found."))
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def key_view(key: ApiKey) -> dict[str, Any]:
    """What the audit log keeps of a key: which one (by its shown prefix and name, never its
    secret or hash) and whether it is live."""
    return {f"API key {key.prefix}… ({key.name})": "revoked" if key.revoked_at else "live"}


def revoke_key_as_admin(db: Session, user_id: int, key_id: Any, *, actor: Actor) -> ApiKey:
    """An admin revokes a user's key (a leaked one, say): audited on the key's owner.
    NotFound for a key that is not that user's, Conflict for one already revoked (nothing is
    recorded either way)."""
    key = _users_key(db, user_id, key_id, lock=True)
    if key is None:
        raise NotFound(_("No such API key."))
    if key.revoked_at is not None:
        raise Conflict(f"API key {key.prefix}… is already revoked.")
    before = key_view(key)
    key.revoked_at = utcnow()
    db.flush()
    actor.record(db, "api_key.revoke", "user", key.user_id, before, key_view(key))
    return key


def bearer_secret(authorization: str | None) -> str:
    if not authorization:
        raise InvalidApiKey(_("Send your API key as 'Authorization: Bearer npx_...'."))
    scheme, _space, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(SECRET_PREFIX):
        raise InvalidApiKey(_("Send your API key as 'Authorization: Bearer npx_...'."))
    if len(value) > 200 or not value.isascii():
        raise InvalidApiKey()
    return value


_KEYS = ApiKey.__table__
_USERS = User.__table__

#: The keys whose shown prefix is a secret's, with whether their user is blocked: one Core
#: select built once. :mod:`.services` adds the caller's plan and quota to it, so that a request
#: learns all it needs about its caller in one round trip.
KEY_CHECK = (
    sa.select(
        _KEYS.c.id,
        _KEYS.c.user_id,
        _KEYS.c.name,
        _KEYS.c.secret_hash,
        _KEYS.c.revoked_at,
        _KEYS.c.last_used_at,
        _USERS.c.is_blocked,
    )
    .join_from(_KEYS, _USERS, _USERS.c.id == _KEYS.c.user_id)
    .where(_KEYS.c.prefix == sa.bindparam("b_prefix"))
)


def authenticate(
    db: Session,
    hasher: KeyHasher,
    authorization: str | None,
    *,
    statement: sa.Select = KEY_CHECK,
    params: dict[str, Any] | None = None,
) -> tuple[sa.Row[Any], str | None]:
    """The live key named by an ``Authorization: Bearer`` header, of a user who may use it: its
    row of :data:`KEY_CHECK` (or of ``statement``, which extends it), and the hash to store
    instead of its own when it was hashed under a previous secret (else None). Writes nothing."""
    secret = bearer_secret(authorization)
    digests = hasher.hashes(secret)
    candidates = db.execute(statement, {"b_prefix": secret[:PREFIX_CHARS], **(params or {})})
    key = next(
        (k for k in candidates if any(hmac.compare_digest(k.secret_hash, d) for d in digests)),
        None,
    )
    if key is None or key.revoked_at is not None:
        raise InvalidApiKey()
    if key.is_blocked:
        raise InvalidApiKey(_("This account is blocked. Contact support."))
    # Hashed under a previous secret: from now on under the current one.
    return key, (digests[0] if key.secret_hash != digests[0] else None)
