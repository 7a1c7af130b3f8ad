"""The key pool's services: the router that hides failing keys, and the box for secrets."""

from __future__ import annotations

from zope.interface import Interface


class IKeyPoolRouter(Interface):
    """Routes images over a provider's keys; one object per process, shared by threads."""

    def route_image(provider, request, *, reference=None):
        """Make one image with the first key that works, or raise PoolUnavailable;
        ``reference`` (e.g. a generation id) is stored on every attempt."""

    def refresh_balances():
        """Read the balances of keys whose provider can; returns them by key id."""


class ISecretBox(Interface):
    """Encrypts, decrypts and fingerprints provider key secrets (keys at rest)."""

    def encrypt(secret):
        """The secret, encrypted for storage."""

    def decrypt(token):
        """The secret, or SecretUnreadable (no known secret, current or previous, opens it)."""

    def open(token):
        """(the secret, whether the current secret encrypted it), or SecretUnreadable."""

    def fingerprint(secret):
        """A keyed hash that finds duplicates without storing the secret twice (current
        secret)."""

    def fingerprints(secret):
        """The fingerprint under every known secret, the current one first."""


class IKeyUsage(Interface):
    """Whether work in progress uses a key (the generation pipeline answers; it sits above the
    key pool, which cannot read generations)."""

    def unfinished(db, key_id):
        """Ids (str) of unfinished generations that made an attempt with the key."""
