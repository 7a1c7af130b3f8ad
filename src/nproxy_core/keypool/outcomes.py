"""Recording an attempt: its row in the attempt log, what its outcome does to the key and the
proxy (the rules of :mod:`.rules`), and the admin alerts that follow.

An outcome is applied in a short transaction of its own, never one held across a provider
call. On PostgreSQL a success or retryable failure on the direct path (the hot path) is one
statement instead, built from the same rule (:mod:`.statements`). Which rule applies is decided
here, once, for both: in particular a rate limit (a 429) cools the called key's whole project
(:data:`.rules.PROJECT_RATE_LIMITED`) when ``group_rate_limits`` is on and the key has a
project; a key without one is its own project, and only the key cools.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from nproxy_core.alerts import AlertKind
from nproxy_core.keypool.choice import Claim
from nproxy_core.keypool.connections import RouterConnections
from nproxy_core.keypool.models import (
    KEY_TEST_REFERENCE,
    AttemptOutcome,
    AttemptPath,
    KeyState,
    key_name,
)
from nproxy_core.keypool.rules import (
    FAILED,
    KEY_REJECTED,
    KEYS,
    OUT_OF_FUNDS,
    PROJECT_RATE_LIMITED,
    PROXY_FAILED,
    PROXY_SUCCEEDED,
    SUCCEEDED,
    TEST_FAILED,
    TEST_RATE_LIMITED,
    TEST_SUCCEEDED,
)
from nproxy_core.keypool.statements import LOGGED, RECORD
from nproxy_core.plugins import (
    KeyRejectedError,
    OutOfFundsError,
    ProviderError,
    RateLimit,
    TransportError,
    UserCausedError,
    next_midnight,
)

#: Longest error text kept on an attempt or a key.
ERROR_LIMIT = 500


@dataclasses.dataclass(frozen=True)
class ProviderWork:
    """What the calls with a claimed key ask of the provider, and what they are recorded under.

    ``call(secret, proxy_url)`` makes one provider call: an image (returning an
    :class:`AttemptResult`) or a key check (returning a :class:`KeyCheck`).
    """

    call: Callable[[str, str | None], Any]
    reference: str | None
    image_index: int | None = None


@dataclasses.dataclass(frozen=True)
class ProviderCall:
    """One provider call with a claimed key: over which path, and what came of it."""

    path: AttemptPath
    #: An :class:`AttemptResult` (an image) or a :class:`KeyCheck` (a key test); None on error.
    result: Any
    error: ProviderError | None
    latency_ms: int
    #: The error's text as recorded: the key scrubbed out, truncated; None on success.
    message: str | None = None


def outcome_of(error: ProviderError | None) -> AttemptOutcome:
    """The class of a call's outcome, from the error the plugin raised (None: success)."""
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


def cooldown_deadline(
    error: ProviderError | None, *, now: dt.datetime, cooldown_seconds: float, day_zone: str
) -> dt.datetime:
    """Until when a key that failed with ``error`` rests.

    A per-day quota is exhausted until the provider's daily reset (midnight in ``day_zone``):
    any earlier attempt only burns a user's wait. Anything else rests the pool's cooldown, or
    the provider's own retry delay when that is longer.
    """
    if getattr(error, "rate_limit", None) is RateLimit.DAILY:
        return next_midnight(now, day_zone)
    retry_after = getattr(error, "retry_after", None) or 0
    return now + dt.timedelta(seconds=max(float(cooldown_seconds), float(retry_after)))


def cools_the_project(
    error: ProviderError | None, claim: Claim, *, group_rate_limits: bool
) -> bool:
    """Whether the outcome cools every key of the claimed key's project, not only the key.

    A rate limit does (the provider said a quota was exceeded, so the quota is the project's);
    a 5xx or a timeout is this call's trouble and does not. A key without a project is its own.
    """
    return (
        group_rate_limits
        and claim.project is not None
        and getattr(error, "rate_limit", None) is not None
    )


def scrub(text: str, secret: str) -> str:
    """``text`` with the key replaced by ``[key]``."""
    # Plugins should never quote the key; this is the router's own guarantee that it does
    # not reach the attempt log or an alert even if one does.
    return text.replace(secret, "[key]") if secret else text


def truncate(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


def record_attempt(
    connections: RouterConnections,
    claim: Claim,
    call: ProviderCall,
    work: ProviderWork,
    *,
    now: dt.datetime,
    cooldown_seconds: float,
    max_consecutive_failures: int,
    day_zone: str = "UTC",
    group_rate_limits: bool = True,
) -> list[tuple[AlertKind, str]]:
    """Log the attempt and apply its outcome to the key and proxy, in one transaction.

    An admin's key test (``work.reference`` is :data:`KEY_TEST_REFERENCE`) is judged the same
    way but stays out of the key's health: it neither counts a failure in a row nor clears them
    (the ``TEST_`` rules). Returns the admin alerts the outcome calls for, as (kind, detail)
    about the claimed key, which they name by label and id.
    """
    path, result, error = call.path, call.result, call.error
    test = work.reference == KEY_TEST_REFERENCE
    outcome = outcome_of(error)
    message = call.message
    cost = getattr(result, "estimated_cost", None)
    attempt = dict(
        key_id=claim.key_id,
        provider=claim.provider,
        reference=work.reference,
        image_index=work.image_index,
        path=path,
        proxy_id=claim.proxy_id if path is AttemptPath.PROXY else None,
        outcome=outcome,
        http_status=error.http_status
        if error is not None
        else getattr(result, "http_status", None),
        latency_ms=call.latency_ms,
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
        key = (
            TEST_SUCCEEDED if test else SUCCEEDED,
            {"b_key_id": claim.key_id, "b_cost": cost or Decimal(0), "b_now": now},
        )
    elif failed:
        deadline = cooldown_deadline(
            error, now=now, cooldown_seconds=cooldown_seconds, day_zone=day_zone
        )
        reason = f"{max_consecutive_failures + 1} consecutive failures; last: {message}"
        failure = {
            "b_key_id": claim.key_id,
            "b_deadline": deadline,
            "b_max": max_consecutive_failures,
            "b_reason": truncate(reason),
            "b_now": now,
        }
        if cools_the_project(error, claim, group_rate_limits=group_rate_limits):
            failure.update(b_provider=claim.provider, b_project=claim.project)
            key = TEST_RATE_LIMITED if test else PROJECT_RATE_LIMITED, failure
        else:
            key = TEST_FAILED if test else FAILED, failure

    version: int | None = None
    # Alerts are worded once the keys they name are known: (kind, detail from the names).
    alerts: list[tuple[AlertKind, Callable[[dict[int, str]], str]]] = []
    named: set[int] = {claim.key_id}
    if key is not None and path is AttemptPath.DIRECT and connections.one_statement and not test:
        # The hot path on PostgreSQL: the key's update and the attempt, one statement.
        statement, params = key
        params.update({f"a_{name}": value for name, value in attempt.items()})
        row = connections.run(LOGGED[statement], params)
    else:
        with connections.transaction() as conn:
            row = None
            if key is not None:
                # The called key's row (a rate limit also changes the rest of its project).
                row = next((r for r in conn.execute(*key) if r.id == claim.key_id), None)
            elif outcome is AttemptOutcome.OUT_OF_FUNDS:
                changed = take_out_of_funds(
                    conn, claim.provider, claim.key_id, claim.billing_group, message, now
                )
                version = changed.get(claim.key_id)
                if changed:
                    named.update(changed)
                    ids = sorted(changed)
                    alerts.append(
                        (
                            AlertKind.KEY_OUT_OF_FUNDS,
                            lambda names: (
                                f"{claim.provider} "
                                + ", ".join(names[i] for i in ids)
                                + f" {'is' if len(ids) == 1 else 'are'} out of funds: {message}"
                            ),
                        )
                    )
            elif outcome is AttemptOutcome.KEY_REJECTED:
                version = conn.scalar(
                    KEY_REJECTED, {"b_key_id": claim.key_id, "b_reason": message, "b_now": now}
                )
                if version is not None:
                    alerts.append(
                        (
                            AlertKind.KEY_MANUAL_REVIEW,
                            lambda names: (
                                f"{claim.provider} {names[claim.key_id]} was rejected "
                                f"and needs manual review: {message}"
                            ),
                        )
                    )
            # USER_CAUSED: the request was at fault; the key is untouched.

            if path is AttemptPath.PROXY and claim.proxy_id is not None:
                conn.execute(
                    PROXY_FAILED if proxy_fault else PROXY_SUCCEEDED,
                    {"b_proxy_id": claim.proxy_id, "b_reason": message, "b_now": now},
                )

            conn.execute(
                RECORD,
                dict(
                    attempt,
                    cooldown_until=row.cooldown_until if row is not None and failed else None,
                    outcome_version=row.version if row is not None else version,
                ),
            )
    if failed and getattr(error, "rate_limit", None) is RateLimit.DAILY:
        whole_project = key is not None and key[0] in (PROJECT_RATE_LIMITED, TEST_RATE_LIMITED)
        alerts.append(
            (
                AlertKind.PROJECT_DAILY_QUOTA,
                lambda names: (
                    f"{claim.provider} {names[claim.key_id]} exhausted its project's "
                    "daily quota; "
                    + (
                        f"project {claim.project!r} (every key of it)"
                        if whole_project
                        else names[claim.key_id]
                    )
                    + f" rests until the daily reset at {deadline:%Y-%m-%d %H:%M} UTC "
                    f"(midnight {day_zone}): {message}"
                ),
            )
        )
    if (
        failed
        and not test
        and row is not None
        and row.state is KeyState.MANUAL_REVIEW
        and row.consecutive_failures == max_consecutive_failures + 1
    ):
        failures = row.consecutive_failures
        alerts.append(
            (
                AlertKind.KEY_MANUAL_REVIEW,
                lambda names: (
                    f"{claim.provider} {names[claim.key_id]} was sent to manual review "
                    f"after {failures} failures in a row: {message}"
                ),
            )
        )
    if not alerts:
        return []
    names = key_names(connections, named)
    return [(kind, word(names)) for kind, word in alerts]


def key_names(connections: RouterConnections, key_ids: set[int]) -> dict[int, str]:
    """{key id: its name (:func:`key_name`)} for the keys an alert names (rare: one query)."""
    with connections.transaction() as conn:
        rows = conn.execute(sa.select(KEYS.c.id, KEYS.c.label).where(KEYS.c.id.in_(key_ids)))
        labels = {key_id: label for key_id, label in rows}
    return {key_id: key_name(key_id, labels.get(key_id)) for key_id in key_ids}


def take_out_of_funds(
    conn: sa.Connection,
    provider: str,
    key_id: int,
    billing_group: str | None,
    reason: str | None,
    now: dt.datetime,
) -> dict[int, int]:
    """Take a key and every in-service key of its billing group out; {key id: version}."""
    params = {
        "b_key_id": key_id,
        "b_provider": provider,
        "b_group": billing_group or None,
        "b_reason": reason,
        "b_now": now,
    }
    return {row.id: row.version for row in conn.execute(OUT_OF_FUNDS, params)}
