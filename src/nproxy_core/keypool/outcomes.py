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


#: The one UPDATE a success or a retryable failure makes to the key: (statement, parameters).
KeyChange = tuple[sa.Update, dict[str, Any]]
#: An admin alert the outcome calls for: its kind, and its detail worded from the names of
#: the keys it mentions (looked up once, after the transaction, only when there is one).
PendingAlert = tuple[AlertKind, Callable[[dict[int, str]], str]]


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
    test = work.reference == KEY_TEST_REFERENCE
    outcome = outcome_of(call.error)
    attempt = attempt_row(claim, call, work, outcome, now)
    # The proxy failed, not the key: the key row is left alone.
    proxy_fault = call.path is AttemptPath.PROXY and outcome is AttemptOutcome.TRANSPORT
    failed = outcome in (AttemptOutcome.RETRYABLE, AttemptOutcome.TRANSPORT)
    deadline = (
        cooldown_deadline(call.error, now=now, cooldown_seconds=cooldown_seconds, day_zone=day_zone)
        if failed
        else None
    )
    key = None
    if not proxy_fault:
        key = key_change(
            claim,
            call,
            outcome,
            test=test,
            deadline=deadline,
            now=now,
            max_consecutive_failures=max_consecutive_failures,
            group_rate_limits=group_rate_limits,
        )
    alerts: list[PendingAlert] = []
    named: set[int] = {claim.key_id}
    if (
        key is not None
        and call.path is AttemptPath.DIRECT
        and connections.one_statement
        and not test
    ):
        # The hot path on PostgreSQL: the key's update and the attempt, one statement.
        statement, params = key
        params.update({f"a_{name}": value for name, value in attempt.items()})
        row = connections.run(LOGGED[statement], params)
    else:
        row = _apply_in_transaction(
            connections, claim, call, outcome, key, attempt, now=now, alerts=alerts, named=named
        )
    if failed and getattr(call.error, "rate_limit", None) is RateLimit.DAILY:
        assert deadline is not None
        whole_project = key is not None and key[0] in (PROJECT_RATE_LIMITED, TEST_RATE_LIMITED)
        alerts.append(
            _daily_quota_alert(claim, call.message, deadline, day_zone, whole_project=whole_project)
        )
    if (
        failed
        and not test
        and row is not None
        and row.state is KeyState.MANUAL_REVIEW
        and row.consecutive_failures == max_consecutive_failures + 1
    ):
        alerts.append(_too_many_failures_alert(claim, call.message, row.consecutive_failures))
    if not alerts:
        return []
    names = key_names(connections, named)
    return [(kind, word(names)) for kind, word in alerts]


def attempt_row(
    claim: Claim, call: ProviderCall, work: ProviderWork, outcome: AttemptOutcome, now: dt.datetime
) -> dict[str, Any]:
    """The attempt's row in the attempt log, but for what the key's change decides."""
    error, result = call.error, call.result
    return dict(
        key_id=claim.key_id,
        provider=claim.provider,
        reference=work.reference,
        image_index=work.image_index,
        path=call.path,
        proxy_id=claim.proxy_id if call.path is AttemptPath.PROXY else None,
        outcome=outcome,
        http_status=error.http_status
        if error is not None
        else getattr(result, "http_status", None),
        latency_ms=call.latency_ms,
        error=call.message,
        estimated_cost=getattr(result, "estimated_cost", None),
        picked_at=claim.picked_at,
        claim_version=claim.version,
        created_at=now,
    )


def key_change(
    claim: Claim,
    call: ProviderCall,
    outcome: AttemptOutcome,
    *,
    test: bool,
    deadline: dt.datetime | None,
    now: dt.datetime,
    max_consecutive_failures: int,
    group_rate_limits: bool,
) -> KeyChange | None:
    """The UPDATE a success or a retryable failure makes to the key (a rate limit: to its
    whole project); None for any other outcome, which the transaction applies itself."""
    if outcome is AttemptOutcome.SUCCESS:
        cost = getattr(call.result, "estimated_cost", None)
        return (
            TEST_SUCCEEDED if test else SUCCEEDED,
            {"b_key_id": claim.key_id, "b_cost": cost or Decimal(0), "b_now": now},
        )
    if deadline is None:  # not a retryable failure
        return None
    reason = f"{max_consecutive_failures + 1} consecutive failures; last: {call.message}"
    failure = {
        "b_key_id": claim.key_id,
        "b_deadline": deadline,
        "b_max": max_consecutive_failures,
        "b_reason": truncate(reason),
        "b_now": now,
    }
    if cools_the_project(call.error, claim, group_rate_limits=group_rate_limits):
        failure.update(b_provider=claim.provider, b_project=claim.project)
        return TEST_RATE_LIMITED if test else PROJECT_RATE_LIMITED, failure
    return TEST_FAILED if test else FAILED, failure


def _apply_in_transaction(
    connections: RouterConnections,
    claim: Claim,
    call: ProviderCall,
    outcome: AttemptOutcome,
    key: KeyChange | None,
    attempt: dict[str, Any],
    *,
    now: dt.datetime,
    alerts: list[PendingAlert],
    named: set[int],
) -> Any:
    """Change the key (or take it out of service), the proxy's health and the attempt log in
    one transaction; adds the alerts that taking keys out calls for. Returns the called key's
    row as the change left it, or None when no UPDATE of the key returned it."""
    message = call.message
    version: int | None = None
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
                alerts.append(_out_of_funds_alert(claim, message, sorted(changed)))
        elif outcome is AttemptOutcome.KEY_REJECTED:
            version = conn.scalar(
                KEY_REJECTED, {"b_key_id": claim.key_id, "b_reason": message, "b_now": now}
            )
            if version is not None:
                alerts.append(_rejected_alert(claim, message))
        # USER_CAUSED: the request was at fault; the key is untouched.

        if call.path is AttemptPath.PROXY and claim.proxy_id is not None:
            proxy_fault = outcome is AttemptOutcome.TRANSPORT
            conn.execute(
                PROXY_FAILED if proxy_fault else PROXY_SUCCEEDED,
                {"b_proxy_id": claim.proxy_id, "b_reason": message, "b_now": now},
            )

        failed = outcome in (AttemptOutcome.RETRYABLE, AttemptOutcome.TRANSPORT)
        conn.execute(
            RECORD,
            dict(
                attempt,
                cooldown_until=row.cooldown_until if row is not None and failed else None,
                outcome_version=row.version if row is not None else version,
            ),
        )
    return row


def _out_of_funds_alert(claim: Claim, message: str | None, ids: list[int]) -> PendingAlert:
    return (
        AlertKind.KEY_OUT_OF_FUNDS,
        lambda names: (
            f"{claim.provider} "
            + ", ".join(names[i] for i in ids)
            + f" {'is' if len(ids) == 1 else 'are'} out of funds: {message}"
        ),
    )


def _rejected_alert(claim: Claim, message: str | None) -> PendingAlert:
    return (
        AlertKind.KEY_MANUAL_REVIEW,
        lambda names: (
            f"{claim.provider} {names[claim.key_id]} was rejected "
            f"and needs manual review: {message}"
        ),
    )


def _daily_quota_alert(
    claim: Claim,
    message: str | None,
    deadline: dt.datetime,
    day_zone: str,
    *,
    whole_project: bool,
) -> PendingAlert:
    return (
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


def _too_many_failures_alert(claim: Claim, message: str | None, failures: int) -> PendingAlert:
    return (
        AlertKind.KEY_MANUAL_REVIEW,
        lambda names: (
            f"{claim.provider} {names[claim.key_id]} was sent to manual review "
            f"after {failures} failures in a row: {message}"
        ),
    )


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
