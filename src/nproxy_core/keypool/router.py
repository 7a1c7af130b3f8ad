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
outcome) into one statement run in autocommit, to save round trips (see ``CLAIM_IN_ONE``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from nproxy_core.db import create_engine, utcnow
from nproxy_core.keypool.alerts import alert_admins
from nproxy_core.keypool.crypto import SecretBox, SecretUnreadable
from nproxy_core.keypool.deadline import DaemonThreads
from nproxy_core.keypool.errors import PoolUnavailable, ProviderNotEnabled
from nproxy_core.keypool.models import (
    IN_SERVICE,
    AttemptOutcome,
    AttemptPath,
    KeyState,
    Proxy,
    ProxyState,
)
from nproxy_core.keypool.rules import (
    FAILED,
    KEY_REJECTED,
    KEYS,
    OUT_OF_FUNDS,
    PROXY_FAILED,
    PROXY_SUCCEEDED,
    SUCCEEDED,
    K,
)
from nproxy_core.keypool.statements import (
    BUMP_CURSOR,
    CANDIDATE,
    CLAIM,
    CLAIM_IN_ONE,
    CURSORS,
    FAILED_LOGGED,
    NEW_CURSOR,
    PROXY_URL,
    RECORD,
    SET_CURSOR,
    SUCCEEDED_LOGGED,
    insert_ignore,
)
from nproxy_core.plugins import (
    AttemptResult,
    ImageRequest,
    KeyRejectedError,
    OutOfFundsError,
    Provider,
    ProviderError,
    RetryableError,
    TransportError,
    UserCausedError,
)

__all__ = ["KeyPoolRouter", "PoolUnavailable", "ProviderNotEnabled", "RoutedImage"]

log = logging.getLogger(__name__)

#: Longest error text kept on an attempt or a key.
ERROR_LIMIT = 500


@dataclasses.dataclass(frozen=True)
class RoutedImage:
    """A successful routing: the provider's result and which key made it."""

    result: AttemptResult
    provider: str
    key_id: int
    #: Provider calls made for this image, failovers and proxy fallbacks included.
    attempts: int


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
        self._threads = DaemonThreads()

    @classmethod
    def from_registry(cls, registry: Any, **overrides: Any) -> KeyPoolRouter:
        from nproxy_core.plugin_registry import get_plugins

        settings = registry.settings
        options: dict[str, Any] = {
            "cooldown_seconds": int(settings["nproxy.keypool.cooldown_seconds"]),
            "max_consecutive_failures": int(settings["nproxy.keypool.max_consecutive_failures"]),
        }
        options.update(overrides)
        return cls(
            registry["db.session_factory"],
            get_plugins(registry).providers,
            registry["keypool.secrets"],
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
        tried: list[int] = []
        calls = 0
        while True:
            claim = self._claim(provider, tried)
            if claim is None:
                break
            tried.append(claim.key_id)
            result, error, used = self._use_key(plugin, claim, request, reference)
            calls += used
            if result is not None:
                return RoutedImage(
                    result=result, provider=provider, key_id=claim.key_id, attempts=calls
                )
            if isinstance(error, UserCausedError):
                raise error
        self._alert(
            "provider unavailable",
            f"no key of provider {provider!r} could make an image "
            f"({len(tried)} tried, {calls} calls); the request failed",
            provider=provider,
            reference=reference,
        )
        raise PoolUnavailable(provider, tried=len(tried))

    # --- choosing a key ------------------------------------------------------------------------

    def _lock_cursor(self, conn: sa.Connection, provider: str) -> int:
        """Take the provider's cursor row for this transaction; returns the last key id."""
        row = conn.execute(BUMP_CURSOR, {"b_provider": provider}).first()
        if row is None:
            conn.execute(insert_ignore(conn, CURSORS, provider=provider, turns=0))
            row = conn.execute(BUMP_CURSOR, {"b_provider": provider}).one()
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
                row = conn.execute(CLAIM, params).first()
                if row is not None:
                    key_id = row.id
                    break
                # Nothing eligible, or the chosen key was taken out of service just now (the
                # next statement sees that and chooses another).
                if conn.scalar(CANDIDATE, params) is None:
                    return None
            conn.execute(SET_CURSOR, {"b_provider": provider, "b_key_id": key_id})
            proxy_url = None
            if row.proxy_id is not None:
                proxy_url = conn.scalar(PROXY_URL, {"b_proxy_id": row.proxy_id})
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
        """PostgreSQL: :meth:`_claim` as one statement (``CLAIM_IN_ONE``) per try."""
        params = {"b_provider": provider, "b_now": now, "b_skip": list(tried)}
        while True:
            row = self._run(CLAIM_IN_ONE, params)
            assert row is not None  # the statement always returns one row
            if row.id is not None:
                break
            if not row.has_cursor:
                # The provider's first choice: make its cursor row, then choose under it.
                self._run(NEW_CURSOR, {"b_provider": provider})
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

    def _use_key(
        self, plugin: Provider, claim: _Claim, request: ImageRequest, reference: str | None
    ) -> tuple[AttemptResult | None, ProviderError | None, int]:
        """Proxy first (when the key has one), then direct. Returns (result, error, calls)."""
        try:
            secret = self._secrets.decrypt(claim.token)
        except SecretUnreadable as exc:
            # Unusable until an admin re-enters it: the same as a rejected key.
            error = KeyRejectedError(str(exc))
            self._record(claim, AttemptPath.DIRECT, None, error, 0, reference, secret="")
            return None, error, 0
        calls = 0
        if claim.proxy_url is not None:
            result, error, latency = self._call(plugin, request, secret, claim.proxy_url)
            calls += 1
            self._record(claim, AttemptPath.PROXY, result, error, latency, reference, secret)
            if not isinstance(error, TransportError):
                return result, error, calls
        result, error, latency = self._call(plugin, request, secret, None)
        calls += 1
        self._record(claim, AttemptPath.DIRECT, result, error, latency, reference, secret)
        return result, error, calls

    def _call(
        self, plugin: Provider, request: ImageRequest, secret: str, proxy_url: str | None
    ) -> tuple[AttemptResult | None, ProviderError | None, int]:
        """One provider call, bounded by the provider's attempt deadline whatever it does.

        A transport can hang past its own timeouts (a silent SOCKS proxy does), so the call
        runs in a daemon thread we stop waiting for; a late answer is thrown away.
        """
        deadline = plugin.attempt_deadline
        started = time.monotonic()
        try:
            result = self._threads.run(
                lambda: plugin.generate(request, api_key=secret, proxy_url=proxy_url), deadline
            )
        except TimeoutError:
            error: ProviderError = TransportError(
                f"no answer within the {deadline:g} s attempt deadline"
            )
            return None, error, _since(started)
        except ProviderError as exc:
            return None, exc, _since(started)
        except Exception as exc:
            return None, self._plugin_bug(plugin, exc, secret), _since(started)
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
        result: AttemptResult | None,
        error: ProviderError | None,
        latency_ms: int,
        reference: str | None,
        secret: str,
    ) -> None:
        """Log the attempt and apply its outcome to the key and proxy, in one transaction."""
        outcome = _outcome_of(error)
        now = self._clock()
        message = _truncate(_scrub(error.message, secret)) if error is not None else None
        cost = result.estimated_cost if result is not None else None
        attempt = dict(
            key_id=claim.key_id,
            provider=claim.provider,
            reference=reference,
            path=path,
            proxy_id=claim.proxy_id if path is AttemptPath.PROXY else None,
            outcome=outcome,
            http_status=error.http_status if error is not None else None,
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
            key = SUCCEEDED, self._success_params(claim.key_id, cost or Decimal(0), now)
        elif failed:
            retry_after = getattr(error, "retry_after", None) or 0
            key = FAILED, self._failure_params(claim.key_id, retry_after, message, now)

        version: int | None = None
        alerts: list[tuple[str, str]] = []
        if key is not None and path is AttemptPath.DIRECT and self._statements is not None:
            # The hot path on PostgreSQL: the key's update and the attempt, one statement.
            statement, params = key
            logged = SUCCEEDED_LOGGED if statement is SUCCEEDED else FAILED_LOGGED
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
                        KEY_REJECTED, {"b_key_id": claim.key_id, "b_reason": message, "b_now": now}
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
                    RECORD,
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

        A billing group is one account paying for several keys (see ``OUT_OF_FUNDS``).
        """
        params = {
            "b_key_id": key_id,
            "b_provider": provider,
            "b_group": billing_group or None,
            "b_reason": reason,
            "b_now": now,
        }
        rows = conn.execute(OUT_OF_FUNDS, params).all()
        return {row.id: row.version for row in rows}

    def _proxy_health(
        self, conn: sa.Connection, proxy_id: int, failure: str | None, now: dt.datetime
    ) -> None:
        params = {"b_proxy_id": proxy_id, "b_reason": failure, "b_now": now}
        conn.execute(PROXY_SUCCEEDED if failure is None else PROXY_FAILED, params)

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
                    .where(KEYS.c.id == row.id)
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


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
