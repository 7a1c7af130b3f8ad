"""The key pool router: one image request in, one image or one classified failure out.

Rules (DESIGN.md 4.5), in the order the code applies them:

1. Keys are taken by round robin from a cursor row per provider, shared by every process, in
   id order, skipping keys already tried for this image. A cooldown key whose deadline passed
   counts as active.
2. A key with a proxy is tried through it first; a transport error there is the proxy's
   fault, so the same key is retried directly and only the proxy's health suffers.
3. The outcome decides what happens to the key: success resets its failure count (and adds
   the estimated cost to its spend); retryable cools it down (and sends it to manual review
   after too many consecutive failures); out of funds takes its whole billing group out;
   rejected goes to manual review; user-caused fails the image at once, key untouched.
4. When every eligible key was tried, the image fails with :class:`PoolUnavailable` and the
   admins are alerted.

Concurrency: nothing here holds a database transaction across a provider call. Choosing a key
is one short transaction that first updates the cursor row (a row lock on PostgreSQL, the
write lock on SQLite), so choices are serialised per provider; the key is then claimed with a
conditional UPDATE that re-checks eligibility. Outcomes are applied in another short
transaction with UPDATEs computed from the row's current values (``x = x + 1``, ``CASE``), so
concurrent outcomes never overwrite each other. The same statements run on SQLite and
PostgreSQL; on PostgreSQL the hot path folds each step (a choice; a success or retryable
outcome) into one statement run in autocommit, to save round trips (see ``_CLAIM_IN_ONE``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, sessionmaker
from zope.interface import implementer

from nproxy_core.db import IDatabase, UTCDateTime, create_engine, utcnow
from nproxy_core.keypool.alerts import alert_admins
from nproxy_core.keypool.crypto import SecretBox, SecretUnreadable
from nproxy_core.keypool.interfaces import IKeyPoolRouter, ISecretBox
from nproxy_core.keypool.models import (
    IN_SERVICE,
    KEY_TEST_REFERENCE,
    AttemptOutcome,
    AttemptPath,
    KeyAttempt,
    KeyCursor,
    KeyState,
    ProviderKey,
    Proxy,
    ProxyState,
)
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import (
    AttemptResult,
    ImageRequest,
    KeyCheck,
    KeyRejectedError,
    Mode,
    OutOfFundsError,
    Provider,
    ProviderError,
    RetryableError,
    TransportError,
    UserCausedError,
)
from nproxy_core.wiring import find_service

__all__ = [
    "KeyPoolRouter",
    "KeyTest",
    "KeyTestUnsupported",
    "PoolUnavailable",
    "ProviderNotEnabled",
    "RouteCheck",
    "RoutedImage",
]

#: The prompt of a key test's one real image: small, plain, and nothing a filter could mind.
KEY_TEST_PROMPT = "A plain red circle on a white background."

log = logging.getLogger(__name__)

#: Longest error text kept on an attempt or a key.
ERROR_LIMIT = 500

# The hot path runs Core statements on the session's connection: the ORM's bulk-update
# machinery costs more than the SQL itself here.
KEYS = ProviderKey.__table__
K = KEYS.c
CURSORS = KeyCursor.__table__
PROXIES = Proxy.__table__
ATTEMPTS = KeyAttempt.__table__


def _eligible_at(now: Any) -> sa.ColumnElement[bool]:
    """In service: active, or cooling down with the deadline passed."""
    return sa.or_(
        K.state == KeyState.ACTIVE,
        sa.and_(
            K.state == KeyState.COOLDOWN,
            sa.or_(K.cooldown_until.is_(None), K.cooldown_until <= now),
        ),
    )


# The hot path's statements are built once, with bound parameters: building SQLAlchemy
# expressions per image cost more CPU than running them.
_NOW = sa.bindparam("b_now", type_=UTCDateTime())
_ELIGIBLE = _eligible_at(_NOW)
_BUMP_CURSOR = (
    sa.update(CURSORS)
    .where(CURSORS.c.provider == sa.bindparam("b_provider"))
    .values(turns=CURSORS.c.turns + 1)
    .returning(CURSORS.c.last_key_id)
)
_SET_CURSOR = (
    sa.update(CURSORS)
    .where(CURSORS.c.provider == sa.bindparam("b_provider"))
    .values(last_key_id=sa.bindparam("b_key_id"))
)


def _candidate_after(last_key_id: Any) -> sa.Select[Any]:
    """The first eligible key after ``last_key_id``, else wrap around to the lowest id."""
    return (
        sa.select(K.id)
        .where(
            K.provider == sa.bindparam("b_provider"),
            _ELIGIBLE,
            K.id.not_in(sa.bindparam("b_skip", expanding=True)),
        )
        .order_by(sa.case((K.id > last_key_id, 0), else_=1), K.id)
        .limit(1)
    )


_CANDIDATE = _candidate_after(sa.bindparam("b_last"))
_CLAIM = (
    sa.update(KEYS)
    # Eligibility is checked again on the row itself: on PostgreSQL, if another process
    # cooled the key down meanwhile, the UPDATE sees its committed state and matches nothing.
    .where(K.id == _CANDIDATE.scalar_subquery(), _ELIGIBLE)
    .values(last_used_at=_NOW, version=K.version + 1)
    .returning(K.id, K.secret_encrypted, K.proxy_id, K.billing_group, K.version)
)
_PROXY_URL = sa.select(PROXIES.c.url).where(
    PROXIES.c.id == sa.bindparam("b_proxy_id"), PROXIES.c.state == ProxyState.ACTIVE
)
_PASSED = sa.or_(K.cooldown_until.is_(None), K.cooldown_until <= _NOW)
_SUCCEEDED = (
    sa.update(KEYS)
    .where(K.id == sa.bindparam("b_key_id"))
    .values(
        consecutive_failures=0,
        estimated_spend=K.estimated_spend + sa.bindparam("b_cost", type_=sa.Numeric(18, 6)),
        # Back to active, unless another process set a later cooldown meanwhile (a rate
        # limit seen elsewhere still holds) or an admin took the key out.
        state=sa.case(
            (sa.and_(K.state == KeyState.COOLDOWN, _PASSED), sa.literal("active")),
            else_=K.state,
        ),
        cooldown_until=sa.case((_PASSED, sa.null()), else_=K.cooldown_until),
        version=K.version + 1,
        updated_at=_NOW,
    )
    .returning(K.version)
)
_DEADLINE = sa.bindparam("b_deadline", type_=UTCDateTime())
_IN_SERVICE = K.state.in_(IN_SERVICE)
_TOO_MANY = K.consecutive_failures + 1 > sa.bindparam("b_max", type_=sa.Integer())
_FAILED = (
    sa.update(KEYS)
    .where(K.id == sa.bindparam("b_key_id"))
    .values(
        consecutive_failures=K.consecutive_failures + 1,
        # Never shorten a later deadline another failure (or a long retry delay) set.
        cooldown_until=sa.case((K.cooldown_until > _DEADLINE, K.cooldown_until), else_=_DEADLINE),
        # Only a key still in service moves; an admin's disable stands.
        state=sa.case(
            (sa.and_(_IN_SERVICE, _TOO_MANY), sa.literal("manual_review")),
            (_IN_SERVICE, sa.literal("cooldown")),
            else_=K.state,
        ),
        state_reason=sa.case(
            (sa.and_(_IN_SERVICE, _TOO_MANY), sa.bindparam("b_reason", type_=sa.String(500))),
            else_=K.state_reason,
        ),
        version=K.version + 1,
        updated_at=_NOW,
    )
    .returning(K.version, K.state, K.cooldown_until, K.consecutive_failures)
)
_RECORD = ATTEMPTS.insert()

# --- PostgreSQL: each step of the hot path as one statement ---------------------------------
#
# The statements above, run one by one in a transaction, cost a round trip each plus BEGIN and
# COMMIT. On PostgreSQL the same statements are folded into one data-modifying statement per
# step, run in autocommit (its own implicit transaction): a choice and an outcome then cost one
# round trip each. SQLite (the embedded default) keeps the statement-by-statement path.

_ONE_ROW = sa.select(sa.literal(1).label("one")).subquery("one")

# Taken first, as in the portable path: FOR UPDATE waits for a concurrent choice to commit and
# then reads the cursor it left, so choices stay serialised per provider.
_CURSOR_ROW = (
    sa.select(CURSORS.c.last_key_id)
    .where(CURSORS.c.provider == sa.bindparam("b_provider"))
    .with_for_update()
    .cte("cursor_row")
)
_PICK = _candidate_after(
    sa.func.coalesce(sa.select(_CURSOR_ROW.c.last_key_id).scalar_subquery(), 0)
).cte("pick")
_CLAIMED = (
    sa.update(KEYS)
    # The statement reads keys as of its start; if another process changed the picked key
    # since (and committed), PostgreSQL re-checks this WHERE on the key's current row.
    .where(
        K.id == sa.select(_PICK.c.id).scalar_subquery(),
        _ELIGIBLE,
        sa.exists(_CURSOR_ROW.select()),
    )
    .values(last_used_at=_NOW, version=K.version + 1)
    .returning(K.id, K.secret_encrypted, K.proxy_id, K.billing_group, K.version)
    .cte("claimed")
)
_CURSOR_MOVED = (
    sa.update(CURSORS)
    .where(CURSORS.c.provider == sa.bindparam("b_provider"))
    .values(
        turns=CURSORS.c.turns + 1,
        last_key_id=sa.func.coalesce(
            sa.select(_CLAIMED.c.id).scalar_subquery(), CURSORS.c.last_key_id
        ),
    )
    .cte("cursor_moved")
)
_CLAIM_IN_ONE = (
    sa.select(
        sa.exists(_CURSOR_ROW.select()).label("has_cursor"),
        sa.select(_PICK.c.id).scalar_subquery().label("candidate"),
        _CLAIMED.c.id,
        _CLAIMED.c.secret_encrypted,
        _CLAIMED.c.proxy_id,
        _CLAIMED.c.billing_group,
        _CLAIMED.c.version,
        PROXIES.c.url.label("proxy_url"),
        # Only bookkeeping is written here (cursor, last use, row version), so waiting for the
        # disk is not needed: a crash loses at most a cursor step, and the outcome's own
        # durable commit flushes this one first anyway. (SET LOCAL for this statement's
        # implicit transaction.)
        sa.func.set_config("synchronous_commit", "off", sa.true()).label("no_flush"),
    )
    .select_from(
        _ONE_ROW.outerjoin(_CLAIMED, sa.true()).outerjoin(
            PROXIES,
            sa.and_(PROXIES.c.id == _CLAIMED.c.proxy_id, PROXIES.c.state == ProxyState.ACTIVE),
        )
    )
    .add_cte(_CURSOR_MOVED)
)


def _with_attempt(key_update: sa.Update, *, sets_cooldown: bool) -> sa.Select[Any]:
    """``key_update`` (with RETURNING) and the attempt's row as one statement.

    The attempt's values are the ``a_<column>`` parameters, except its outcome version (and,
    with ``sets_cooldown``, its cooldown deadline), which come from the updated key row. The
    attempt is written even when the update matched nothing. Returns the update's row.
    """
    changed = key_update.cte("changed_key")
    row = _ONE_ROW.outerjoin(changed, sa.true())
    values: dict[str, Any] = {
        c.name: sa.bindparam(f"a_{c.name}", type_=c.type)
        for c in ATTEMPTS.c
        if c.name not in ("id", "outcome_version", "cooldown_until")
    }
    values["outcome_version"] = changed.c.version
    values["cooldown_until"] = changed.c.cooldown_until if sets_cooldown else sa.null()
    logged = ATTEMPTS.insert().from_select(
        list(values), sa.select(*values.values()).select_from(row)
    )
    return sa.select(changed).select_from(row).add_cte(logged.cte("logged"))


_NEW_CURSOR = (
    postgresql.insert(CURSORS)
    .values(provider=sa.bindparam("b_provider"), turns=0)
    .on_conflict_do_nothing()
    .returning(CURSORS.c.provider)
)
_SUCCEEDED_LOGGED = _with_attempt(_SUCCEEDED, sets_cooldown=False)
_FAILED_LOGGED = _with_attempt(_FAILED, sets_cooldown=True)


class PoolUnavailable(Exception):
    """Every eligible key of the provider was tried (or there was none): the image fails.

    The generation pipeline maps this to ``provider_unavailable``; it consumes no quota.
    ``message`` is safe to show to users.
    """

    code = "provider_unavailable"
    message = "Image generation is temporarily unavailable. Please try again in a few minutes."

    def __init__(self, provider: str, *, tried: int) -> None:
        super().__init__(f"no key of provider {provider!r} could make the image (tried {tried})")
        self.provider = provider
        self.tried = tried


class ProviderNotEnabled(LookupError):
    """The request names a provider that is not enabled in ``nproxy.providers``."""


@dataclasses.dataclass(frozen=True)
class RoutedImage:
    """A successful routing: the provider's result and which key made it."""

    result: AttemptResult
    provider: str
    key_id: int
    #: Provider calls made for this image, failovers and proxy fallbacks included.
    attempts: int


@dataclasses.dataclass(frozen=True)
class _Work:
    """What an attempt asks of the provider, and what its attempts are recorded under.

    ``call(secret, proxy_url)`` makes one provider call: an image (returning an
    :class:`AttemptResult`) or a key check (returning a :class:`KeyCheck`).
    """

    call: Callable[[str, str | None], Any]
    reference: str | None
    image_index: int | None = None


@dataclasses.dataclass(frozen=True)
class _Used:
    """What using one key came to: its last call's result or error, over which path."""

    result: Any
    error: ProviderError | None
    calls: int
    path: AttemptPath
    latency_ms: int
    #: The error's message as recorded (scrubbed, truncated); None on success.
    message: str | None


@dataclasses.dataclass(frozen=True)
class KeyTest:
    """What an admin's key test found: the outcome class of its last call, and its details."""

    key_id: int
    provider: str
    #: ``check`` (the free check) or ``image`` (one real minimal image).
    kind: str
    outcome: AttemptOutcome
    path: AttemptPath
    http_status: int | None
    latency_ms: int
    #: What the provider said: the check's description, the image's size, or the error.
    detail: str
    calls: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "outcome": str(self.outcome),
            "path": str(self.path),
            "http_status": self.http_status,
            "latency_ms": self.latency_ms,
            "detail": self.detail,
        }


@dataclasses.dataclass(frozen=True)
class RouteCheck:
    """Whether one provider answered over a proxy (an admin's proxy test)."""

    provider: str
    ok: bool
    latency_ms: int
    detail: str


class KeyTestUnsupported(Exception):
    """The key's provider cannot test a key the way asked (no free check, no text-to-image)."""


@dataclasses.dataclass(frozen=True)
class _Claim:
    provider: str
    key_id: int
    token: str
    proxy_id: int | None
    proxy_url: str | None
    billing_group: str | None
    version: int
    picked_at: dt.datetime


def _truncate(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


def _scrub(text: str, secret: str) -> str:
    # Plugins should never quote the key; this is the router's own guarantee that it does
    # not reach the attempt log or an alert even if one does.
    return text.replace(secret, "[key]") if secret else text


def _outcome_of(error: ProviderError | None) -> AttemptOutcome:
    if error is None:
        return AttemptOutcome.SUCCESS
    if isinstance(error, TransportError):
        return AttemptOutcome.TRANSPORT
    if isinstance(error, OutOfFundsError):
        return AttemptOutcome.OUT_OF_FUNDS
    if isinstance(error, KeyRejectedError):
        return AttemptOutcome.KEY_REJECTED
    if isinstance(error, UserCausedError):
        return AttemptOutcome.USER_CAUSED
    # RetryableError, and a bare ProviderError that did not say whose fault it is: the key
    # rests and the next one is tried, which is the cautious reading.
    return AttemptOutcome.RETRYABLE


class _DaemonThreads:
    """Runs calls on reusable daemon threads, so each attempt can be abandoned at its deadline.

    A standard thread pool will not do: its threads are joined at interpreter exit, so one
    hung attempt would keep a worker process from stopping. An abandoned call only keeps its
    own thread; threads are reused once their call returns.
    """

    def __init__(self) -> None:
        self._idle: queue.SimpleQueue[queue.SimpleQueue[Any]] = queue.SimpleQueue()

    def run(self, fn: Callable[[], Any], timeout: float) -> Any:
        """``fn()``'s result (or exception); :class:`TimeoutError` past ``timeout`` seconds."""
        future: Future[Any] = Future()
        try:
            inbox = self._idle.get_nowait()
        except queue.Empty:
            inbox = queue.SimpleQueue()
            threading.Thread(
                target=self._serve, args=(inbox,), name="nproxy-attempt", daemon=True
            ).start()
        inbox.put((fn, future))
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise TimeoutError from None

    def _serve(self, inbox: queue.SimpleQueue[Any]) -> None:
        while True:
            fn, future = inbox.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # delivered to the waiting thread
                future.set_exception(exc)
            del fn, future
            self._idle.put(inbox)


@implementer(IKeyPoolRouter)
class KeyPoolRouter:
    """Routes images over a provider's keys. One instance per process, shared by threads."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        providers: Mapping[str, Provider],
        secrets: SecretBox,
        *,
        cooldown_seconds: float = 300,
        max_consecutive_failures: int = 10,
        clock: Callable[[], dt.datetime] = utcnow,
        alert: Callable[..., None] = alert_admins,
    ) -> None:
        self._session_factory = session_factory
        # PostgreSQL: the hot path's one-statement steps run on an engine of the router's own.
        self._statements = _statement_engine(session_factory.kw["bind"])
        # Kept by reference: the registry's dict of enabled providers.
        self._providers = providers
        self._secrets = secrets
        self.cooldown_seconds = cooldown_seconds
        self.max_consecutive_failures = max_consecutive_failures
        self._clock = clock
        self._alert = alert
        self._threads = _DaemonThreads()

    @classmethod
    def from_registry(cls, registry: Any, **overrides: Any) -> KeyPoolRouter:
        """A router for a configuration, on the services of its registry."""
        settings = registry.settings
        options: dict[str, Any] = {
            "cooldown_seconds": int(settings["nproxy.keypool.cooldown_seconds"]),
            "max_consecutive_failures": int(settings["nproxy.keypool.max_consecutive_failures"]),
        }
        options.update(overrides)
        return cls(
            find_service(registry, IDatabase).session_factory,
            find_service(registry, IPlugins).providers,
            find_service(registry, ISecretBox),
            **options,
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """A short transaction of the router's own, committed when the block ends."""
        with self._session_factory.begin() as session:
            yield session.connection()

    def _run(self, statement: sa.Executable, params: dict[str, Any]) -> sa.Row[Any] | None:
        """One statement in its own implicit transaction (PostgreSQL); returns its first row.

        Connections are not pinged on checkout (a round trip each time); instead a statement
        that finds its connection dead (the database restarted, an idle connection was cut)
        runs once more on a fresh one: the pool then replaces every connection older than the
        failure. Such a statement never reached the server. (A connection lost in the middle
        of a statement is as ambiguous as one lost during a COMMIT: rare, and not told apart.)
        """
        assert self._statements is not None
        for last in (False, True):
            try:
                with self._statements.connect() as conn:
                    return conn.execute(statement, params).first()
            except sa.exc.DBAPIError as exc:
                if last or not exc.connection_invalidated:
                    raise
                log.warning("router connection lost (%s); running the statement again", exc.orig)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the public entry point ----------------------------------------------------------------

    def route_image(
        self, provider: str, request: ImageRequest, *, reference: str | None = None
    ) -> RoutedImage:
        """Make one image with one of ``provider``'s keys.

        Returns a :class:`RoutedImage`. Raises the plugin's :class:`UserCausedError`
        (``ContentPolicyError`` / ``InvalidInputError``; ``.code`` and ``.message``) when the
        request itself is at fault, :class:`PoolUnavailable` when no key could make it, and
        :class:`ProviderNotEnabled` for a provider that is not enabled. ``reference`` (e.g. a
        generation id) is stored on every attempt.
        """
        plugin = self._providers.get(provider)
        if plugin is None:
            raise ProviderNotEnabled(f"provider {provider!r} is not enabled")
        work = _Work(
            lambda secret, proxy_url: plugin.generate(request, api_key=secret, proxy_url=proxy_url),
            reference=reference,
            image_index=request.index,
        )
        tried: list[int] = []
        calls = 0
        while True:
            claim = self._claim(provider, tried)
            if claim is None:
                break
            tried.append(claim.key_id)
            used = self._use_key(plugin, claim, work)
            calls += used.calls
            if used.result is not None:
                return RoutedImage(
                    result=used.result, provider=provider, key_id=claim.key_id, attempts=calls
                )
            if isinstance(used.error, UserCausedError):
                raise used.error
        self._alert(
            "provider unavailable",
            f"no key of provider {provider!r} could make an image "
            f"({len(tried)} tried, {calls} calls); the request failed",
            provider=provider,
            reference=reference,
        )
        raise PoolUnavailable(provider, tried=len(tried))

    # --- an admin's tests ----------------------------------------------------------------------

    def test_key(self, key_id: int, *, generate: bool = False) -> KeyTest:
        """Test one key whatever its state: the provider's free check, or with ``generate``
        one real minimal image (which costs what an image costs).

        The key is called as the router calls it (proxy first, then direct) and every call is
        recorded as an attempt, whose outcome is applied to the key as any attempt's is: a
        rejected key goes to review, a success clears the failure count. A test never puts a
        key back in service (an admin's restore does). Raises :class:`LookupError` for an
        unknown key, :class:`ProviderNotEnabled` and :class:`KeyTestUnsupported`.
        """
        with self._transaction() as conn:
            row = conn.execute(
                sa.update(KEYS)
                .where(K.id == key_id)
                .values(version=K.version + 1)
                .returning(K.provider, K.secret_encrypted, K.proxy_id, K.billing_group, K.version)
            ).first()
            if row is None:
                raise LookupError(f"no provider key with id {key_id}")
            claim = self._claim_of(conn, row.provider, key_id, row, self._clock())
        plugin = self._providers.get(row.provider)
        if plugin is None:
            raise ProviderNotEnabled(f"provider {row.provider!r} is not enabled")
        work = _Work(self._test_call(plugin, generate), reference=KEY_TEST_REFERENCE)
        used = self._use_key(plugin, claim, work)
        return KeyTest(
            key_id=key_id,
            provider=row.provider,
            kind="image" if generate else "check",
            outcome=_outcome_of(used.error),
            path=used.path,
            http_status=(
                used.error.http_status
                if used.error is not None
                else getattr(used.result, "http_status", None)
            ),
            latency_ms=used.latency_ms,
            detail=used.message if used.message is not None else _describe_result(used.result),
            calls=used.calls,
        )

    @staticmethod
    def _test_call(plugin: Provider, generate: bool) -> Callable[[str, str | None], Any]:
        if not generate:
            if not plugin.supports_key_check:
                raise KeyTestUnsupported(
                    f"provider {plugin.name!r} cannot check a key without making an image; "
                    "test it with one real image instead"
                )
            return lambda secret, proxy_url: plugin.check_key(api_key=secret, proxy_url=proxy_url)
        model = next(
            (m for m in plugin.capabilities() if Mode.TEXT_TO_IMAGE in m.modes and m.resolutions),
            None,
        )
        if model is None:
            raise KeyTestUnsupported(f"provider {plugin.name!r} offers no text-to-image model")
        request = ImageRequest(
            mode=Mode.TEXT_TO_IMAGE,
            prompt=KEY_TEST_PROMPT,
            resolution=model.resolutions[0],
            model=model.model,
        )
        return lambda secret, proxy_url: plugin.generate(
            request, api_key=secret, proxy_url=proxy_url
        )

    def test_proxy(self, proxy_id: int) -> list[RouteCheck]:
        """Ask every enabled provider to answer over the proxy, and record its health: it
        works when at least one provider answered. Raises :class:`LookupError` for an unknown
        proxy. The proxy's state (enabled or disabled) is not changed."""
        with self._transaction() as conn:
            url = conn.scalar(sa.select(PROXIES.c.url).where(PROXIES.c.id == proxy_id))
        if url is None:
            raise LookupError(f"no proxy with id {proxy_id}")
        checks = [self._check_route(plugin, url) for plugin in self._providers.values()]
        failure = None
        if not any(check.ok for check in checks):
            failure = _truncate(
                "; ".join(f"{c.provider}: {c.detail}" for c in checks) or "no provider enabled"
            )
        with self._transaction() as conn:
            self._proxy_health(conn, proxy_id, failure, self._clock())
        return checks

    def _check_route(self, plugin: Provider, proxy_url: str) -> RouteCheck:
        started = time.monotonic()
        try:
            detail = self._threads.run(
                lambda: plugin.check_route(proxy_url=proxy_url), plugin.attempt_deadline
            )
        except TimeoutError:
            detail, ok = f"no answer within {plugin.attempt_deadline:g} s", False
        except ProviderError as exc:
            detail, ok = exc.message, False
        except Exception as exc:
            detail, ok = self._plugin_bug(plugin, exc, "").message, False
        else:
            ok = True
        return RouteCheck(plugin.name, ok, _since(started), _truncate(str(detail)) or "")

    # --- choosing a key ------------------------------------------------------------------------

    def _lock_cursor(self, conn: sa.Connection, provider: str) -> int:
        """Take the provider's cursor row for this transaction; returns the last key id."""
        row = conn.execute(_BUMP_CURSOR, {"b_provider": provider}).first()
        if row is None:
            conn.execute(_insert_ignore(conn, CURSORS, provider=provider, turns=0))
            row = conn.execute(_BUMP_CURSOR, {"b_provider": provider}).one()
        return row.last_key_id or 0

    def _claim(self, provider: str, tried: list[int]) -> _Claim | None:
        now = self._clock()
        if self._statements is not None:
            return self._claim_in_one(provider, tried, now)
        with self._transaction() as conn:
            params = {
                "b_provider": provider,
                "b_now": now,
                "b_skip": list(tried),
                "b_last": self._lock_cursor(conn, provider),
            }
            while True:
                row = conn.execute(_CLAIM, params).first()
                if row is not None:
                    key_id = row.id
                    break
                # Nothing eligible, or the chosen key was taken out of service just now (the
                # next statement sees that and chooses another).
                if conn.scalar(_CANDIDATE, params) is None:
                    return None
            conn.execute(_SET_CURSOR, {"b_provider": provider, "b_key_id": key_id})
            return self._claim_of(conn, provider, key_id, row, now)

    @staticmethod
    def _claim_of(
        conn: sa.Connection, provider: str, key_id: int, row: Any, now: dt.datetime
    ) -> _Claim:
        """The claim of a key row just taken, with its proxy's URL if the proxy is enabled."""
        proxy_url = None
        if row.proxy_id is not None:
            proxy_url = conn.scalar(_PROXY_URL, {"b_proxy_id": row.proxy_id})
        return _Claim(
            provider=provider,
            key_id=key_id,
            token=row.secret_encrypted,
            proxy_id=row.proxy_id if proxy_url is not None else None,
            proxy_url=proxy_url,
            billing_group=row.billing_group,
            version=row.version,
            picked_at=now,
        )

    def _claim_in_one(self, provider: str, tried: list[int], now: dt.datetime) -> _Claim | None:
        """PostgreSQL: :meth:`_claim` as one statement (``_CLAIM_IN_ONE``) per try."""
        params = {"b_provider": provider, "b_now": now, "b_skip": list(tried)}
        while True:
            row = self._run(_CLAIM_IN_ONE, params)
            assert row is not None  # the statement always returns one row
            if row.id is not None:
                break
            if not row.has_cursor:
                # The provider's first choice: make its cursor row, then choose under it.
                self._run(_NEW_CURSOR, {"b_provider": provider})
                continue
            # Nothing eligible, or the chosen key was taken out of service just now (the next
            # try sees that and chooses another).
            if row.candidate is None:
                return None
        return _Claim(
            provider=provider,
            key_id=row.id,
            token=row.secret_encrypted,
            proxy_id=row.proxy_id if row.proxy_url is not None else None,
            proxy_url=row.proxy_url,
            billing_group=row.billing_group,
            version=row.version,
            picked_at=now,
        )

    # --- using a key ---------------------------------------------------------------------------

    def _use_key(self, plugin: Provider, claim: _Claim, work: _Work) -> _Used:
        """Proxy first (when the key has one), then direct."""
        try:
            secret = self._secrets.decrypt(claim.token)
        except SecretUnreadable as exc:
            # Unusable until an admin re-enters it: the same as a rejected key.
            error = KeyRejectedError(str(exc))
            self._record(claim, AttemptPath.DIRECT, None, error, 0, work, secret="")
            return _Used(None, error, 0, AttemptPath.DIRECT, 0, error.message)
        calls = 0
        if claim.proxy_url is not None:
            result, error, latency = self._call(plugin, work, secret, claim.proxy_url)
            calls += 1
            self._record(claim, AttemptPath.PROXY, result, error, latency, work, secret)
            if not isinstance(error, TransportError):
                return _Used(result, error, calls, AttemptPath.PROXY, latency, _said(error, secret))
        result, error, latency = self._call(plugin, work, secret, None)
        calls += 1
        self._record(claim, AttemptPath.DIRECT, result, error, latency, work, secret)
        return _Used(result, error, calls, AttemptPath.DIRECT, latency, _said(error, secret))

    def _call(
        self, plugin: Provider, work: _Work, secret: str, proxy_url: str | None
    ) -> tuple[Any, ProviderError | None, int]:
        """One provider call, bounded by the provider's attempt deadline whatever it does.

        A transport can hang past its own timeouts (a silent SOCKS proxy does), so the call
        runs in a daemon thread we stop waiting for; a late answer is thrown away.
        """
        deadline = plugin.attempt_deadline
        started = time.monotonic()
        try:
            result = self._threads.run(lambda: work.call(secret, proxy_url), deadline)
        except TimeoutError:
            error: ProviderError = TransportError(
                f"no answer within the {deadline:g} s attempt deadline"
            )
            return None, error, _since(started)
        except ProviderError as exc:
            return None, exc, _since(started)
        except Exception as exc:
            return None, self._plugin_bug(plugin, exc, secret), _since(started)
        if isinstance(result, AttemptResult) and result.estimated_cost is None:
            # No cost of its own (no usage metadata): the provider's price of one image.
            result = dataclasses.replace(result, estimated_cost=plugin.price_per_image)
        return result, None, _since(started)

    def _plugin_bug(self, plugin: Provider, exc: BaseException, secret: str) -> ProviderError:
        # A plugin bug. Log it (scrubbed) and treat it as retryable: the key rests, the next
        # is tried, and if every key hits it the pool-unavailable alert fires.
        log.error(
            "provider %r raised an unexpected error:\n%s",
            plugin.name,
            _scrub("".join(traceback.format_exception(exc)), secret),
        )
        return RetryableError(f"the provider plugin failed: {type(exc).__name__}")

    # --- recording outcomes --------------------------------------------------------------------

    def _record(
        self,
        claim: _Claim,
        path: AttemptPath,
        result: Any,
        error: ProviderError | None,
        latency_ms: int,
        work: _Work,
        secret: str,
    ) -> None:
        """Log the attempt and apply its outcome to the key and proxy, in one transaction.

        ``result`` is what the call returned (an :class:`AttemptResult`, or a
        :class:`KeyCheck` for a key test), None when it failed.
        """
        outcome = _outcome_of(error)
        now = self._clock()
        message = _truncate(_scrub(error.message, secret)) if error is not None else None
        cost = getattr(result, "estimated_cost", None)
        status = error.http_status if error is not None else getattr(result, "http_status", None)
        attempt = dict(
            key_id=claim.key_id,
            provider=claim.provider,
            reference=work.reference,
            image_index=work.image_index,
            path=path,
            proxy_id=claim.proxy_id if path is AttemptPath.PROXY else None,
            outcome=outcome,
            http_status=status,
            latency_ms=latency_ms,
            error=message,
            estimated_cost=cost,
            picked_at=claim.picked_at,
            claim_version=claim.version,
            created_at=now,
        )
        proxy_fault = path is AttemptPath.PROXY and outcome is AttemptOutcome.TRANSPORT
        # Success and a retryable failure each change the key with one UPDATE (``key``).
        failed = outcome in (AttemptOutcome.RETRYABLE, AttemptOutcome.TRANSPORT)
        key: tuple[sa.Update, dict[str, Any]] | None = None
        if proxy_fault:
            pass  # the proxy failed, not the key: the key row is left alone
        elif outcome is AttemptOutcome.SUCCESS:
            key = _SUCCEEDED, self._success_params(claim.key_id, cost or Decimal(0), now)
        elif failed:
            retry_after = getattr(error, "retry_after", None) or 0
            key = _FAILED, self._failure_params(claim.key_id, retry_after, message, now)

        version: int | None = None
        alerts: list[tuple[str, str]] = []
        if key is not None and path is AttemptPath.DIRECT and self._statements is not None:
            # The hot path on PostgreSQL: the key's update and the attempt, one statement.
            statement, params = key
            logged = _SUCCEEDED_LOGGED if statement is _SUCCEEDED else _FAILED_LOGGED
            params.update({f"a_{name}": value for name, value in attempt.items()})
            row = self._run(logged, params)
        else:
            with self._transaction() as conn:
                row = None
                if key is not None:
                    row = conn.execute(*key).first()
                elif outcome is AttemptOutcome.OUT_OF_FUNDS:
                    changed = self.mark_out_of_funds(
                        conn, claim.provider, claim.key_id, claim.billing_group, message, now
                    )
                    version = changed.get(claim.key_id)
                    if changed:
                        alerts.append(
                            (
                                "keys out of funds",
                                f"{claim.provider} keys {sorted(changed)} are out of funds: "
                                f"{message}",
                            )
                        )
                elif outcome is AttemptOutcome.KEY_REJECTED:
                    version = conn.scalar(
                        sa.update(KEYS)
                        .where(K.id == claim.key_id, K.state.in_(IN_SERVICE))
                        .values(
                            state=KeyState.MANUAL_REVIEW,
                            state_reason=message,
                            version=K.version + 1,
                            updated_at=now,
                        )
                        .returning(K.version),
                    )
                    if version is not None:
                        alerts.append(
                            (
                                "key rejected",
                                f"{claim.provider} key {claim.key_id} was rejected and needs "
                                f"review: {message}",
                            )
                        )
                # USER_CAUSED: the request was at fault; the key is untouched.

                if path is AttemptPath.PROXY and claim.proxy_id is not None:
                    self._proxy_health(conn, claim.proxy_id, message if proxy_fault else None, now)

                conn.execute(
                    _RECORD,
                    dict(
                        attempt,
                        cooldown_until=row.cooldown_until if row is not None and failed else None,
                        outcome_version=row.version if row is not None else version,
                    ),
                )
        if (
            failed
            and row is not None
            and row.state is KeyState.MANUAL_REVIEW
            and row.consecutive_failures == self.max_consecutive_failures + 1
        ):
            alerts.append(
                (
                    "key sent to manual review",
                    f"{claim.provider} key {claim.key_id} failed "
                    f"{row.consecutive_failures} times in a row: {message}",
                )
            )
        for subject, detail in alerts:
            self._alert(subject, detail, provider=claim.provider, key_id=claim.key_id)

    @staticmethod
    def _success_params(key_id: int, cost: Decimal, now: dt.datetime) -> dict[str, Any]:
        return {"b_key_id": key_id, "b_cost": cost, "b_now": now}

    def _failure_params(
        self, key_id: int, retry_after: float, message: str | None, now: dt.datetime
    ) -> dict[str, Any]:
        seconds = max(float(self.cooldown_seconds), float(retry_after))
        reason = _truncate(
            f"{self.max_consecutive_failures + 1} consecutive failures; last: {message}"
        )
        return {
            "b_key_id": key_id,
            "b_deadline": now + dt.timedelta(seconds=seconds),
            "b_max": self.max_consecutive_failures,
            "b_reason": reason,
            "b_now": now,
        }

    def mark_out_of_funds(
        self,
        conn: sa.Connection,
        provider: str,
        key_id: int,
        billing_group: str | None,
        reason: str | None,
        now: dt.datetime,
    ) -> dict[int, int]:
        """Take a key and every in-service key of its billing group out; {key id: version}.

        A billing group is one account paying for several keys, so a depleted signal on one
        key holds for all of them. Groups are per provider: the same label under two
        providers names two accounts.
        """
        targets = K.id == key_id
        if billing_group:
            targets = sa.or_(
                targets, sa.and_(K.provider == provider, K.billing_group == billing_group)
            )
        rows = conn.execute(
            sa.update(KEYS)
            .where(targets, K.state.in_(IN_SERVICE))
            .values(
                state=KeyState.OUT_OF_FUNDS,
                state_reason=reason,
                version=K.version + 1,
                updated_at=now,
            )
            .returning(K.id, K.version),
        ).all()
        return {row.id: row.version for row in rows}

    def _proxy_health(
        self, conn: sa.Connection, proxy_id: int, failure: str | None, now: dt.datetime
    ) -> None:
        if failure is None:
            values: dict[str, Any] = {"consecutive_failures": 0, "last_ok_at": now}
        else:
            values = {
                "consecutive_failures": PROXIES.c.consecutive_failures + 1,
                "total_failures": PROXIES.c.total_failures + 1,
                "last_error": failure,
                "last_failure_at": now,
                "updated_at": now,
            }
        conn.execute(
            sa.update(PROXIES).where(PROXIES.c.id == proxy_id).values(**values),
        )

    # --- balances ------------------------------------------------------------------------------

    def refresh_balances(self) -> dict[int, Decimal | None]:
        """Read the balance of every in-service key whose provider can; {key id: balance}.

        A balance at or below zero takes the key (and its billing group) out of service. No
        transaction is open during the provider calls.
        """
        with self._transaction() as conn:
            rows = conn.execute(
                sa.select(K.id, K.provider, K.secret_encrypted, K.billing_group, Proxy.url)
                .outerjoin(Proxy, sa.and_(Proxy.id == K.proxy_id, Proxy.state == ProxyState.ACTIVE))
                .where(K.state.in_(IN_SERVICE))
                .order_by(K.id)
            ).all()
        balances: dict[int, Decimal | None] = {}
        for row in rows:
            plugin = self._providers.get(row.provider)
            if plugin is None or not plugin.supports_balance:
                continue
            balance = self._read_balance(plugin, row)
            balances[row.id] = balance
            if balance is None:
                continue
            now = self._clock()
            with self._transaction() as conn:
                conn.execute(
                    sa.update(KEYS)
                    .where(K.id == row.id)
                    .values(balance=balance, balance_checked_at=now, updated_at=now),
                )
                changed: dict[int, int] = {}
                if balance <= 0:
                    changed = self.mark_out_of_funds(
                        conn,
                        row.provider,
                        row.id,
                        row.billing_group,
                        f"balance is {balance}",
                        now,
                    )
            if changed:
                self._alert(
                    "keys out of funds",
                    f"{row.provider} key {row.id} has a balance of {balance}; "
                    f"keys {sorted(changed)} taken out of service",
                    provider=row.provider,
                    key_id=row.id,
                )
        return balances

    def _read_balance(self, plugin: Provider, row: Any) -> Decimal | None:
        try:
            secret = self._secrets.decrypt(row.secret_encrypted)
        except SecretUnreadable:
            log.warning("key %s cannot be decrypted; balance not read", row.id)
            return None
        try:
            balance = self._threads.run(
                lambda: plugin.check_balance(api_key=secret, proxy_url=row.url),
                plugin.attempt_deadline,
            )
        except Exception as exc:  # a balance we cannot read changes nothing
            reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            log.warning("balance of %s key %s not read: %s", row.provider, row.id, reason)
            return None
        return None if balance is None else Decimal(balance)


def _statement_engine(engine: sa.Engine) -> sa.Engine | None:
    """On PostgreSQL, the engine for the router's one-statement steps; None elsewhere.

    Same database, own pool: autocommit (each statement its own transaction, so no BEGIN and
    COMMIT round trips) and no ping on checkout (:meth:`KeyPoolRouter._run` retries instead).
    It is disposed with ``engine``.
    """
    if engine.dialect.name != "postgresql":
        return None
    own = create_engine(
        {"sqlalchemy.url": engine.url},
        pool_pre_ping=False,
        # Connections older than this are replaced, before an idle timeout can cut them.
        pool_recycle=1800,
        pool_size=engine.pool.size(),  # type: ignore[attr-defined]
        isolation_level="AUTOCOMMIT",
    )
    sa.event.listen(engine, "engine_disposed", lambda _engine: own.dispose())
    return own


def _said(error: ProviderError | None, secret: str) -> str | None:
    return None if error is None else _truncate(_scrub(error.message, secret))


def _describe_result(result: Any) -> str:
    """A successful test's detail: what the check said, or the image made."""
    if isinstance(result, KeyCheck):
        return result.detail
    image = result.image
    size = f"{image.width}x{image.height} " if image.width and image.height else ""
    return f"made a {size}{image.mime} image"


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _insert_ignore(conn: sa.Connection, table: sa.Table, **values: Any) -> sa.Executable:
    """INSERT that does nothing when the row exists (another process made it first)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - nproxy runs on PostgreSQL and SQLite
        raise RuntimeError(f"unsupported database {dialect!r}")
    return insert(table).values(**values).on_conflict_do_nothing()
