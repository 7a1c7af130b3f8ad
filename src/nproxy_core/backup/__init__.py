"""Backups (DESIGN 4.11): the database, every stored object and a manifest in one folder, and
restoring such a folder into an empty database and storage. The ``nproxy backup`` commands
(``cli.py``) present :mod:`nproxy_core.backup.services`; nothing here is wired into the app."""
