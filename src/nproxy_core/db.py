"""The database: engine, typed declarative base, and ``request.db`` joined to ``request.tm``."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
import zope.sqlalchemy
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from zope.interface import Attribute, Interface, implementer

# Constraint names that Alembic can rely on, on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def str_enum(enum_cls: type, name: str) -> sa.Enum:
    """A string-valued enum column storing the members' values, without a native DB type."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        length=32,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


#: JSON on every backend, JSONB on PostgreSQL.
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_uuid(value: Any) -> uuid.UUID | None:
    """A public id from a URL or a body as a UUID, or None when it is not one."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# Feature modules whose models make up the schema; Alembic and the tests import them all.
MODEL_MODULES = (
    "nproxy_core.accounts.models",
    "nproxy_core.audit.models",
    "nproxy_core.billing.models",
    "nproxy_core.quota.models",
    "nproxy_core.keypool.models",
    "nproxy_core.uploads.models",
    "nproxy_core.generation.models",
    "nproxy_core.health.models",
    "nproxy_core.admin.models",
    "nproxy_core.telegram.models",
)


def import_models() -> sa.MetaData:
    import importlib

    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata


def create_engine(settings: Mapping[str, Any], **kwargs: Any) -> sa.Engine:
    url = sa.make_url(settings["sqlalchemy.url"])
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            # The embedded default keeps its database under var/, made on first start.
            os.makedirs(os.path.dirname(os.path.abspath(url.database)), exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", int(settings.get("sqlalchemy.pool_size", 10)))
    kwargs.setdefault("max_overflow", int(settings.get("sqlalchemy.max_overflow", 20)))
    return sa.create_engine(url, **kwargs)


def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_tm_session(factory: sessionmaker[Session], transaction_manager: Any) -> Session:
    """A session whose commit and rollback belong to ``transaction_manager``."""
    dbsession = factory()
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


class IDatabase(Interface):
    """The database of this configuration: its engine and the factory of its sessions."""

    engine = Attribute("sqlalchemy.Engine")
    session_factory = Attribute("sessionmaker: sessions that commit on their own")


@implementer(IDatabase)
class Database:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.session_factory = session_factory(engine)

    def dispose(self) -> None:
        """Close every pooled connection (tests and forking servers)."""
        self.engine.dispose()


def includeme(config: Any) -> None:
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    database = Database(create_engine(settings))
    config.register_service(database, IDatabase)

    def db(request: Any) -> Session:
        return get_tm_session(database.session_factory, request.tm)

    config.add_request_method(db, "db", reify=True)
