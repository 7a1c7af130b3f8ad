"""The database: engine, typed declarative base, and ``request.db`` joined to ``request.tm``.

Connections are not pinged on every checkout (a round trip per request): they are recycled after
``sqlalchemy.pool_recycle`` seconds, and a connection found dead when it is used invalidates the
pool and marks the error retryable, so pyramid_retry runs the request again on a fresh one.

A route added with ``read_only=True`` only reads: its ``request.db`` runs in autocommit, outside
the request's transaction manager, so a read costs one round trip with no BEGIN and no ROLLBACK
around it, and any write through it fails loudly. Such a route may also give its connection back
while it waits (long polling).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping
from typing import Any

import pyramid_retry
import sqlalchemy as sa
import zope.sqlalchemy
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from zope.interface import Attribute, Interface, implementer

from nproxy_core.plugins import non_negative_int, positive_int, setting

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
    "nproxy_core.billing.stars",
    "nproxy_core.referrals.models",
    "nproxy_core.quota.models",
    "nproxy_core.pricing.models",
    "nproxy_core.keypool.models",
    "nproxy_core.uploads.models",
    "nproxy_core.generation.models",
    "nproxy_core.prompt_templates.models",
    "nproxy_core.developer_api.models",
    "nproxy_core.health.models",
    "nproxy_core.admin.models",
    "nproxy_core.alerts.models",
    "nproxy_core.telegram.models",
    "nproxy_core.twofactor.models",
    "nproxy_core.customerbot.models",
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
    # No pre-ping: it is a round trip on every checkout. Recycling keeps connections younger
    # than any idle timeout on the way, and a dead one is recovered from when it is used.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault(
        "pool_recycle",
        setting(settings, "sqlalchemy.pool_recycle", default=1800, cast=positive_int),
    )
    kwargs.setdefault(
        "pool_size", setting(settings, "sqlalchemy.pool_size", default=10, cast=positive_int)
    )
    kwargs.setdefault(
        "max_overflow",
        setting(settings, "sqlalchemy.max_overflow", default=20, cast=non_negative_int),
    )
    engine = sa.create_engine(url, **kwargs)
    event.listen(engine, "handle_error", _retry_after_disconnect)
    return engine


def _retry_after_disconnect(context: sa.engine.ExceptionContext) -> None:
    # A statement that found its connection dead ran in a transaction the server has already
    # lost, so running the whole request again is safe; SQLAlchemy has invalidated the pool's
    # older connections, so the retry gets a fresh one. A failed COMMIT (no statement) is left
    # alone: whether it happened cannot be known.
    if (
        context.is_disconnect
        and context.statement is not None
        and context.sqlalchemy_exception is not None
    ):
        pyramid_retry.mark_error_retryable(context.sqlalchemy_exception)


def is_disconnect(error: BaseException) -> bool:
    """Whether ``error`` is a database error that found its connection dead."""
    return isinstance(error, sa.exc.DBAPIError) and bool(error.connection_invalidated)


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the database could not be reached, rather than that a statement
    failed: a connection refused or cut (the server down or restarting, ``too many clients``,
    connections not allowed) or none free in the pool in time. Work that met it can be tried
    again in a few seconds."""
    if isinstance(error, sa.exc.TimeoutError):  # the pool had no connection free in time
        return True
    if is_disconnect(error):
        return True
    # Failing to connect raises with no statement; a failed statement names its statement.
    return isinstance(error, sa.exc.OperationalError) and error.statement is None


def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


class ReadOnlyViolation(RuntimeError):
    """A read-only route tried to write: a bug in that route, never the user's fault."""


class ReadOnlySession(Session):
    """The session of a read-only route: autocommit reads, and no writes at all."""


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_statement_writes(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlyViolation("a read-only route tried to write to the database")


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flushed_writes(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlyViolation("a read-only route tried to write to the database")


class ReadOnlyRoute:
    """The route predicate ``read_only=True``: it matches always; ``request.db`` reads it."""

    def __init__(self, value: bool, _info: Any) -> None:
        self.value = bool(value)

    def text(self) -> str:
        return f"read_only = {self.value}"

    phash = text

    def __call__(self, _info: Any, _request: Any) -> bool:
        return True


def is_read_only(request: Any) -> bool:
    """Whether the request's route was added with ``read_only=True``."""
    route = getattr(request, "matched_route", None)
    return route is not None and any(
        isinstance(p, ReadOnlyRoute) and p.value for p in route.predicates
    )


def hand_back_connection(request: Any) -> None:
    """Return a read-only route's connection to the pool before it waits: hundreds of held
    requests must not hold the pool. ``request.db`` takes a connection again when next used."""
    if not is_read_only(request):
        # In a read-write route this would end the request's transaction half way.
        raise ReadOnlyViolation("only a read-only route can hand its connection back")
    if "db" in request.__dict__:
        request.db.close()


def get_tm_session(factory: sessionmaker[Session], transaction_manager: Any) -> Session:
    """A session whose commit and rollback belong to ``transaction_manager``."""
    dbsession = factory()
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


class IDatabase(Interface):
    """The database of this configuration: its engine and the factory of its sessions."""

    engine = Attribute("sqlalchemy.Engine")
    session_factory = Attribute("sessionmaker: sessions that commit on their own")
    reader = Attribute("the engine's pool in autocommit, for reads outside a transaction")


@implementer(IDatabase)
class Database:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.session_factory = session_factory(engine)
        # The same pool, in autocommit: a read costs one round trip, with no BEGIN/ROLLBACK.
        self.reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.read_only_session_factory = sessionmaker(
            bind=self.reader, class_=ReadOnlySession, expire_on_commit=False
        )

    def dispose(self) -> None:
        """Close every pooled connection (tests and forking servers)."""
        self.engine.dispose()


def includeme(config: Any) -> None:
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    database = Database(create_engine(settings))
    config.register_service(database, IDatabase)
    config.add_route_predicate("read_only", ReadOnlyRoute)

    def db(request: Any) -> Session:
        if is_read_only(request):
            # Nothing to commit: no transaction manager to join, only a session to close.
            session = database.read_only_session_factory()
            request.add_finished_callback(lambda _request: session.close())
            return session
        return get_tm_session(database.session_factory, request.tm)

    config.add_request_method(db, "db", reify=True)
