"""The server secret (``NPROXY_SECRET``) across a rotation (DESIGN 4.11): ``nproxy secrets
rotate`` (:mod:`.cli`). What each feature keeps under the secret rotates in that feature (the
key pool's :mod:`~nproxy_core.keypool.rotation`); sessions, signed links and API key hashes
accept ``nproxy.secret_previous`` where they are checked."""
