"""The key pool router: one image request in, one image or one classified failure out.

Rules (DESIGN.md 4.5), in the order the code applies them:

1. Keys are taken by round robin from a cursor row per provider, shared by every process, in
   id order, skipping keys already tried for this image (:mod:`.choice`). A cooldown key
   whose deadline passed counts as active.
2. A key with a proxy is tried through it first; a transport error there is the proxy's
   fault, so the same key is retried directly and only the proxy's health suffers.
3. The outcome decides what happens to the key (:mod:`.rules`, applied by :mod:`.outcomes`):
   success resets its failure count (and adds the estimated cost to its spend); retryable
   cools it down (and sends it to manual review after too many consecutive failures), until
   the provider's daily reset when a per-day quota ran out (with an admin alert); a rate
   limit cools every key of the key's project to the same deadline (``group_rate_limits``),
   so the next choice never lands on the same exhausted quota; out of funds takes its whole
   billing group out; rejected goes to manual review; user-caused fails the image at once,
   key untouched.
4. When every eligible key was tried, the image fails with :class:`PoolUnavailable` and the
   admins are alerted.

Concurrency: nothing here holds a database transaction across a provider call. Choosing a key
and recording an outcome are each a short transaction of their own, or on PostgreSQL one
statement run in autocommit (:mod:`.statements`, :mod:`.connections`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from zope.interface import implementer

from nproxy_core import metrics
from nproxy_core.alerts import AlertKind, IAlertNotifier
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.keypool.alerts import (
    PoolAlerts,
    key_subject,
    project_subject,
    provider_subject,
)
from nproxy_core.keypool.balances import refresh_balances
from nproxy_core.keypool.checks import (
    KeyTest,
    KeyTestUnsupported,
    RouteCheck,
    describe_result,
    test_call,
)
from nproxy_core.keypool.choice import Claim, choose_key, claim_key
from nproxy_core.keypool.connections import RouterConnections
from nproxy_core.keypool.crypto import SecretBox, SecretUnreadable
from nproxy_core.keypool.deadline import DaemonThreads
from nproxy_core.keypool.errors import PoolUnavailable, ProviderNotEnabled
from nproxy_core.keypool.interfaces import IKeyPoolRouter, ISecretBox
from nproxy_core.keypool.models import KEY_TEST_REFERENCE, AttemptPath
from nproxy_core.keypool.outcomes import (
    ProviderCall,
    ProviderWork,
    key_names,
    outcome_of,
    record_attempt,
    scrub,
    truncate,
)
from nproxy_core.keypool.rotation import UNREADABLE_HINT, UNREADABLE_SUBJECT
from nproxy_core.keypool.rules import KEYS, PROXIES, PROXY_FAILED, PROXY_SUCCEEDED
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import (
    AttemptResult,
    ImageRequest,
    Provider,
    ProviderError,
    RetryableError,
    TransportError,
    UserCausedError,
    boolean,
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

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RoutedImage:
    """A successful routing: the provider's result and which key made it."""

    result: AttemptResult
    provider: str
    key_id: int
    #: Provider calls made for this image, failovers and proxy fallbacks included.
    attempts: int


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
        group_rate_limits: bool = True,
        clock: Callable[[], dt.datetime] = utcnow,
        alert: Callable[..., None],
    ) -> None:
        self._connections = RouterConnections(session_factory)
        # Kept by reference: the registry's dict of enabled providers.
        self._providers = providers
        self._secrets = secrets
        self.cooldown_seconds = cooldown_seconds
        self.max_consecutive_failures = max_consecutive_failures
        self.group_rate_limits = group_rate_limits
        self._clock = clock
        self._alert = alert
        self._threads = DaemonThreads()
        # Providers this process reported as exhausted: the next image made clears the alert.
        self._exhausted: set[str] = set()
        # Keys this process found no known secret opens (alerted once each).
        self._unreadable_keys: set[int] = set()

    @classmethod
    def from_registry(cls, registry: Any, **overrides: Any) -> KeyPoolRouter:
        """A router for a configuration, on the services of its registry."""
        settings = registry.settings
        options: dict[str, Any] = {
            "cooldown_seconds": int(settings["nproxy.keypool.cooldown_seconds"]),
            "max_consecutive_failures": int(settings["nproxy.keypool.max_consecutive_failures"]),
            "group_rate_limits": boolean(settings["nproxy.keypool.group_rate_limits"]),
        }
        options.setdefault("alert", PoolAlerts(find_service(registry, IAlertNotifier)))
        options.update(overrides)
        return cls(
            find_service(registry, IDatabase).session_factory,
            find_service(registry, IPlugins).providers,
            find_service(registry, ISecretBox),
            **options,
        )

    # --- the public entry points ---------------------------------------------------------------

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
        work = ProviderWork(
            lambda secret, proxy_url: plugin.generate(request, api_key=secret, proxy_url=proxy_url),
            reference=reference,
            image_index=request.index,
        )
        tried: list[int] = []
        calls = 0
        while True:
            claim = choose_key(self._connections, provider, tried, self._clock())
            if claim is None:
                break
            tried.append(claim.key_id)
            if len(tried) > 1:
                metrics.FAILOVERS.labels(provider).inc()
            call, used = self._use_key(plugin, claim, work)
            calls += used
            if call.result is not None:
                if provider in self._exhausted:
                    self._exhausted.discard(provider)
                    resolve = getattr(self._alert, "resolve", None)
                    if resolve is not None:
                        resolve(
                            AlertKind.POOL_EXHAUSTED,
                            provider_subject(provider),
                            "images are being made again "
                            f"({key_names(self._connections, {claim.key_id})[claim.key_id]})",
                        )
                return RoutedImage(
                    result=call.result, provider=provider, key_id=claim.key_id, attempts=calls
                )
            if isinstance(call.error, UserCausedError):
                raise call.error
        self._exhausted.add(provider)
        self._alert(
            AlertKind.POOL_EXHAUSTED,
            provider_subject(provider),
            f"provider unavailable: no key of provider {provider!r} could make an image "
            f"({len(tried)} tried, {calls} calls); the request failed",
        )
        raise PoolUnavailable(provider, tried=len(tried))

    def refresh_balances(self) -> dict[int, Decimal | None]:
        """Read the balance of every in-service key whose provider can; {key id: balance}.

        A balance at or below zero takes the key (and its billing group) out of service.
        """
        return refresh_balances(
            self._connections,
            self._providers,
            self._secrets,
            self._threads,
            clock=self._clock,
            alert=self._alert,
        )

    # --- an admin's tests ----------------------------------------------------------------------

    def test_key(self, key_id: int, *, generate: bool = False) -> KeyTest:
        """Test one key whatever its state: the provider's free check, or with ``generate``
        one real minimal image (which costs what an image costs).

        The key is called as the router calls it (proxy first, then direct) and every call is
        recorded as an attempt, whose outcome is applied to the key as any attempt's is (a
        rejected key goes to review, a 503 rests it), except that a test stays out of the key's
        health: it counts no failure in a row and clears none, and the health figures leave it
        out (:data:`.models.COUNTS_FOR_HEALTH`). A test never puts a key back in service (an
        admin's restore does). Raises :class:`LookupError` for an unknown key,
        :class:`ProviderNotEnabled` and :class:`KeyTestUnsupported`.
        """
        with self._connections.transaction() as conn:
            provider = conn.scalar(sa.select(KEYS.c.provider).where(KEYS.c.id == key_id))
        if provider is None:
            raise LookupError(f"no provider key with id {key_id}")
        plugin = self._providers.get(provider)
        if plugin is None:
            raise ProviderNotEnabled(f"provider {provider!r} is not enabled")
        # Refused tests (no such check) stop here, before the key row is touched.
        work = ProviderWork(test_call(plugin, generate), reference=KEY_TEST_REFERENCE)
        claim = claim_key(self._connections, key_id, self._clock())
        if claim is None:
            raise LookupError(f"no provider key with id {key_id}")
        call, calls = self._use_key(plugin, claim, work)
        return KeyTest(
            key_id=key_id,
            provider=claim.provider,
            kind="image" if generate else "check",
            outcome=outcome_of(call.error),
            path=call.path,
            http_status=(
                call.error.http_status
                if call.error is not None
                else getattr(call.result, "http_status", None)
            ),
            latency_ms=call.latency_ms,
            detail=call.message if call.error is not None else describe_result(call.result),
            calls=calls,
        )

    def test_proxy(self, proxy_id: int) -> list[RouteCheck]:
        """Ask every enabled provider to answer over the proxy, and record its health: it
        works when at least one provider answered. Raises :class:`LookupError` for an unknown
        proxy. The proxy's state (enabled or disabled) is not changed."""
        with self._connections.transaction() as conn:
            url = conn.scalar(sa.select(PROXIES.c.url).where(PROXIES.c.id == proxy_id))
        if url is None:
            raise LookupError(f"no proxy with id {proxy_id}")
        checks = [self._check_route(plugin, url) for plugin in self._providers.values()]
        failure = None
        if not any(check.ok for check in checks):
            failure = truncate(
                "; ".join(f"{c.provider}: {c.detail}" for c in checks) or "no provider enabled"
            )
        with self._connections.transaction() as conn:
            conn.execute(
                PROXY_FAILED if failure is not None else PROXY_SUCCEEDED,
                {"b_proxy_id": proxy_id, "b_reason": failure, "b_now": self._clock()},
            )
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
        return RouteCheck(plugin.name, ok, _since(started), truncate(str(detail)) or "")

    # --- using a key ---------------------------------------------------------------------------

    def _use_key(
        self, plugin: Provider, claim: Claim, work: ProviderWork
    ) -> tuple[ProviderCall, int]:
        """Proxy first (when the key has one), then direct. Returns (the last call, calls)."""
        try:
            secret = self._secrets.decrypt(claim.token)
        except SecretUnreadable:
            return self._unreadable(claim), 0
        calls = 0
        if claim.proxy_url is not None:
            call = self._call(plugin, work, secret, claim.proxy_url)
            calls += 1
            self._record(claim, call, work)
            if not isinstance(call.error, TransportError):
                return call, calls
        call = self._call(plugin, work, secret, None)
        calls += 1
        self._record(claim, call, work)
        return call, calls

    def _unreadable(self, claim: Claim) -> ProviderCall:
        """A key no known secret decrypts: the server's configuration is at fault (the secret
        changed without the old one kept in ``nproxy.secret_previous``), not the key. Judging
        it as the provider would (review, a failure count) would send every stored key to
        review on its next use, and restoring them would not help; so the key's state is left
        as it is, no attempt is recorded, the admins are alerted (naming the key, never a
        secret) and the next key is tried. Fixing the configuration brings it back at once."""
        if claim.key_id not in self._unreadable_keys:
            # Once per key and process: only a restart with other settings (or a rotation,
            # or deleting the key) changes the verdict.
            self._unreadable_keys.add(claim.key_id)
            log.error("provider key %s %s", claim.key_id, UNREADABLE_HINT)
            name = key_names(self._connections, {claim.key_id})[claim.key_id]
            detail = f"{claim.provider} {name} {UNREADABLE_HINT}"
            self._alert(AlertKind.KEY_UNREADABLE, UNREADABLE_SUBJECT, detail)
        error = RetryableError(f"key {claim.key_id} {UNREADABLE_HINT}")
        return ProviderCall(AttemptPath.DIRECT, None, error, 0, truncate(error.message))

    def _call(
        self, plugin: Provider, work: ProviderWork, secret: str, proxy_url: str | None
    ) -> ProviderCall:
        """One provider call, bounded by the provider's attempt deadline whatever it does.

        A transport can hang past its own timeouts (a silent SOCKS proxy does), so the call
        runs in a daemon thread we stop waiting for; a late answer is thrown away.
        """
        path = AttemptPath.DIRECT if proxy_url is None else AttemptPath.PROXY
        deadline = plugin.attempt_deadline
        started = time.monotonic()
        try:
            result = self._threads.run(lambda: work.call(secret, proxy_url), deadline)
        except TimeoutError:
            error: ProviderError = TransportError(
                f"no answer within the {deadline:g} s attempt deadline"
            )
        except ProviderError as exc:
            error = exc
        except Exception as exc:
            error = self._plugin_bug(plugin, exc, secret)
        else:
            if isinstance(result, AttemptResult) and result.estimated_cost is None:
                # No cost of its own (no usage metadata): the provider's price of one image.
                result = dataclasses.replace(result, estimated_cost=plugin.price_per_image)
            return ProviderCall(path, result, None, _since(started))
        said = truncate(scrub(error.message, secret))
        return ProviderCall(path, None, error, _since(started), said)

    def _plugin_bug(self, plugin: Provider, exc: BaseException, secret: str) -> ProviderError:
        # A plugin bug. Log it (scrubbed) and treat it as retryable: the key rests, the next
        # is tried, and if every key hits it the pool-unavailable alert fires.
        log.error(
            "provider %r raised an unexpected error:\n%s",
            plugin.name,
            scrub("".join(traceback.format_exception(exc)), secret),
        )
        return RetryableError(f"the provider plugin failed: {type(exc).__name__}")

    def _record(self, claim: Claim, call: ProviderCall, work: ProviderWork) -> None:
        """Log the attempt, apply its outcome, and raise the alerts it calls for."""
        alerts = record_attempt(
            self._connections,
            claim,
            call,
            work,
            now=self._clock(),
            cooldown_seconds=self.cooldown_seconds,
            max_consecutive_failures=self.max_consecutive_failures,
            day_zone=self._providers[claim.provider].quota_day_zone,
            group_rate_limits=self.group_rate_limits,
        )
        _count(claim, call)
        for kind, detail in alerts:
            subject = key_subject(claim.provider, claim.key_id)
            if kind is AlertKind.PROJECT_DAILY_QUOTA and claim.project:
                # The quota is the project's: one alert for the project, whichever key hit it.
                subject = project_subject(claim.provider, claim.project)
            self._alert(kind, subject, detail)


def _count(claim: Claim, call: ProviderCall) -> None:
    """The attempt in the Prometheus figures (labels: provider, outcome, project; never a key)."""
    metrics.KEY_ATTEMPTS.labels(claim.provider, str(outcome_of(call.error))).inc()
    metrics.KEY_ATTEMPT_DURATION.labels(claim.provider).observe(call.latency_ms / 1000)
    cost = getattr(call.result, "estimated_cost", None)
    if cost:
        metrics.ESTIMATED_SPEND.labels(claim.provider, claim.project or "").inc(float(cost))


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
