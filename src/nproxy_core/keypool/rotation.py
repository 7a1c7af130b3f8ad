"""Provider key secrets across a change of ``nproxy.secret`` (DESIGN 4.11 "Secrets rotate").

The secret derives both the key that encrypts provider keys and the key of their fingerprints
(:mod:`.crypto`). With the old secret in ``nproxy.secret_previous`` every stored key still
decrypts, and a secret added twice is still recognised by its fingerprint under the old
secret; :func:`rotate_key_secrets` then re-encrypts and re-fingerprints every key with the
current secret, so the old one can be dropped.

A key no known secret opens is never judged as if its provider had rejected it: the router
leaves it alone and alerts (see ``router._use_key``), adding a key is refused while any stored
key of the provider is unreadable (a duplicate could not be recognised), and rotation refuses
before it changes anything.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.errors import Conflict
from nproxy_core.keypool.crypto import SecretBox, SecretUnreadable
from nproxy_core.keypool.models import ProviderKey

__all__ = [
    "RotationReport",
    "SecretsUnreadable",
    "check_new_secret",
    "rotate_key_secrets",
    "unreadable_keys",
]

#: The subject of the admin alert raised when a stored key cannot be decrypted: one alert for
#: the configuration fault, whichever keys show it.
UNREADABLE_SUBJECT = "nproxy.secret"
#: What the operator should do about it, said once for every surface.
UNREADABLE_HINT = (
    "cannot be decrypted with NPROXY_SECRET nor NPROXY_SECRET_PREVIOUS: list the secret "
    "used before in NPROXY_SECRET_PREVIOUS and restart"
)


class SecretsUnreadable(Conflict):
    """Stored keys that no known secret opens: a configuration fault, named by key ids."""

    def __init__(self, key_ids: list[int], what: str = "") -> None:
        self.key_ids = key_ids
        listed = ", ".join(str(i) for i in key_ids[:20]) + (", …" if len(key_ids) > 20 else "")
        noun = "key" if len(key_ids) == 1 else "keys"
        super().__init__(f"{what}provider {noun} {listed} {UNREADABLE_HINT}")


def unreadable_keys(db: Session, secrets: SecretBox, provider: str | None = None) -> list[int]:
    """Ids of the stored keys (of ``provider``, or all; deleted ones aside) that no known
    secret decrypts."""
    query = (
        sa.select(ProviderKey.id, ProviderKey.secret_encrypted)
        .where(ProviderKey.deleted_at.is_(None))
        .order_by(ProviderKey.id)
    )
    if provider is not None:
        query = query.where(ProviderKey.provider == provider)
    unreadable = []
    for key_id, token in db.execute(query):
        try:
            secrets.open(token)
        except SecretUnreadable:
            unreadable.append(key_id)
    return unreadable


def check_new_secret(db: Session, secrets: SecretBox, provider: str, secret: str) -> str:
    """The fingerprint to store for a new key of ``provider``; Conflict when the pool already
    holds the secret (stored under the current secret or a previous one), SecretsUnreadable
    when a stored key cannot be read, so a duplicate could not be recognised."""
    existing = db.scalar(
        sa.select(ProviderKey.id)
        .where(
            ProviderKey.provider == provider,
            ProviderKey.secret_fingerprint.in_(secrets.fingerprints(secret)),
        )
        .limit(1)
    )
    if existing is not None:
        raise Conflict(f"this {provider} key is already in the pool (key {existing})")
    unreadable = unreadable_keys(db, secrets, provider)
    if unreadable:
        raise SecretsUnreadable(
            unreadable, "no key can be added while a duplicate cannot be ruled out: "
        )
    return secrets.fingerprint(secret)


@dataclasses.dataclass(frozen=True)
class RotationReport:
    #: Keys re-encrypted (and re-fingerprinted) with the current secret.
    rotated: int
    #: Keys already encrypted with it (their fingerprint made current if it was not).
    current: int
    #: Deleted keys no known secret opens, left as they are (never used again).
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.rotated + self.current


def rotate_key_secrets(db: Session, secrets: SecretBox) -> RotationReport:
    """Re-encrypt and re-fingerprint every stored key with the current secret, in the caller's
    transaction. Running it again changes nothing. Refuses before any change when a key cannot
    be read (:class:`SecretsUnreadable`) or when two keys of a provider hold the same secret
    (added twice while the secret was changed without the old one kept: delete one first)."""
    # Locked so that no key is edited or deleted meanwhile (the router only reads the token);
    # a key added meanwhile is encrypted with the current secret already.
    rows = db.execute(
        sa.select(
            ProviderKey.id,
            ProviderKey.provider,
            ProviderKey.secret_encrypted,
            ProviderKey.secret_fingerprint,
            ProviderKey.deleted_at,
        )
        .order_by(ProviderKey.id)
        .with_for_update()
    ).all()
    opened: list[tuple[int, str, str, bool, str, Any]] = []
    unreadable: list[int] = []
    skipped = 0
    for row in rows:
        try:
            secret, is_current = secrets.open(row.secret_encrypted)
        except SecretUnreadable:
            if row.deleted_at is not None:
                skipped += 1
            else:
                unreadable.append(row.id)
            continue
        opened.append(
            (row.id, row.provider, secret, is_current, row.secret_fingerprint, row.deleted_at)
        )
    if unreadable:
        raise SecretsUnreadable(unreadable, "nothing was changed: ")
    holders: dict[tuple[str, str], list[int]] = defaultdict(list)
    for key_id, provider, secret, _, _, deleted_at in opened:
        if deleted_at is None:
            holders[(provider, secrets.fingerprint(secret))].append(key_id)
    twins = [ids for ids in holders.values() if len(ids) > 1]
    if twins:
        pairs = "; ".join(" and ".join(str(i) for i in ids) for ids in twins)
        raise Conflict(
            f"nothing was changed: provider keys {pairs} hold the same secret; "
            "delete the extra ones (nproxy keys delete ID) and rotate again"
        )
    rotated = current = 0
    for key_id, provider, secret, is_current, fingerprint, deleted_at in opened:
        values: dict[str, str] = {}
        if not is_current:
            values["secret_encrypted"] = secrets.encrypt(secret)
        new_fingerprint = secrets.fingerprint(secret)
        # A deleted key whose secret a live key holds again keeps its old fingerprint (one
        # fingerprint per provider; the live key is the one duplicates are refused against).
        taken = deleted_at is not None and (provider, new_fingerprint) in holders
        if fingerprint != new_fingerprint and not taken:
            values["secret_fingerprint"] = new_fingerprint
            holders[(provider, new_fingerprint)].append(key_id)
        if values:
            db.execute(sa.update(ProviderKey).where(ProviderKey.id == key_id).values(**values))
        if is_current:
            current += 1
        else:
            rotated += 1
    return RotationReport(rotated=rotated, current=current, skipped=skipped)
