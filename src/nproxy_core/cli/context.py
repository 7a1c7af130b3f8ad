"""What a command needs: the settings of its ini file, the wired registry, a transaction.

Imported by every feature's ``cli`` module, so it imports only click at module level: Pyramid,
SQLAlchemy and the wiring load when a command first asks for them, not for ``--help``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pyramid.registry import Registry
    from sqlalchemy.orm import Session


class CLIContext:
    def __init__(self, config_path: str) -> None:
        self.config_path = config_path

    @functools.cached_property
    def raw_settings(self) -> dict[str, Any]:
        if not os.path.exists(self.config_path):
            raise click.ClickException(f"config file not found: {self.config_path}")
        from pyramid.paster import get_appsettings, setup_logging

        setup_logging(self.config_path)
        return dict(get_appsettings(self.config_path))

    @functools.cached_property
    def settings(self) -> dict[str, Any]:
        from nproxy_core.config import normalize_settings

        return normalize_settings(self.raw_settings)

    @functools.cached_property
    def config(self) -> Any:
        from nproxy_core.config import configure

        config = configure(self.raw_settings)
        config.commit()
        return config

    @property
    def registry(self) -> Registry:
        return self.config.registry

    def find_service(self, iface: Any, name: str = "") -> Any:
        from nproxy_core.wiring import find_service

        return find_service(self.registry, iface, name)

    def close(self) -> None:
        """Let go of the database connections a command opened (when it built the app)."""
        if "config" in self.__dict__:
            from nproxy_core.db import IDatabase

            self.find_service(IDatabase).engine.dispose()

    def make_wsgi_app(self) -> Any:
        return self.config.make_wsgi_app()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A database session whose work commits when the block ends without error."""
        import transaction

        from nproxy_core.db import IDatabase, get_tm_session

        manager = transaction.TransactionManager(explicit=True)
        db = get_tm_session(self.find_service(IDatabase).session_factory, manager)
        try:
            with manager:
                yield db
        finally:
            db.close()


pass_cli = click.make_pass_decorator(CLIContext)
