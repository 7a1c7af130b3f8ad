"""The key pool's rules (DESIGN.md 4.5) as SQL: when a key is in service, and what each outcome
of an attempt does to its key and its proxy.

Each rule is written once, as a statement built at import with bound parameters (building
SQLAlchemy expressions per image cost more CPU than running them). Values are computed from the
row's current ones (``x = x + 1``, ``CASE``), so concurrent outcomes never overwrite each other.
The router runs them one by one in a short transaction on every database; on PostgreSQL
:mod:`.statements` folds a success or a retryable failure, with its attempt's row, into one
statement built from these same ones.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from nproxy_core.db import UTCDateTime
from nproxy_core.keypool.models import IN_SERVICE, KeyState, ProviderKey, Proxy

# The hot path runs Core statements on the session's connection: the ORM's bulk-update
# machinery costs more than the SQL itself here.
KEYS = ProviderKey.__table__
K = KEYS.c
PROXIES = Proxy.__table__

NOW = sa.bindparam("b_now", type_=UTCDateTime())
_KEY_ID = sa.bindparam("b_key_id")
_REASON = sa.bindparam("b_reason", type_=sa.String(500))


def eligible_at(now: Any) -> sa.ColumnElement[bool]:
    """In service: active, or cooling down with the deadline passed."""
    return sa.or_(
        K.state == KeyState.ACTIVE,
        sa.and_(
            K.state == KeyState.COOLDOWN,
            sa.or_(K.cooldown_until.is_(None), K.cooldown_until <= now),
        ),
    )


ELIGIBLE = eligible_at(NOW)
_PASSED = sa.or_(K.cooldown_until.is_(None), K.cooldown_until <= NOW)
_IN_SERVICE = K.state.in_(IN_SERVICE)

#: Success: the failure count starts again and the estimated cost adds to the key's spend.
SUCCEEDED = (
    sa.update(KEYS)
    .where(K.id == _KEY_ID)
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
        updated_at=NOW,
    )
    .returning(K.id, K.version)
)

_DEADLINE = sa.bindparam("b_deadline", type_=UTCDateTime())
_CALLED = K.id == _KEY_ID
_TOO_MANY = sa.and_(
    _CALLED, _IN_SERVICE, K.consecutive_failures + 1 > sa.bindparam("b_max", type_=sa.Integer())
)


def _failure(*, project_wide: bool, counted: bool = True) -> sa.Update:
    """The retryable rule: the called key (``b_key_id``) cools down until ``b_deadline`` and
    counts one more failure in a row; past ``b_max`` of them it goes to manual review with
    ``b_reason``. Not ``counted`` (an admin's key test): it only cools down, its failures in a
    row stay as they were.

    ``project_wide`` (a rate limit, DESIGN 4.5): every other in-service key of the project
    ``b_project`` of provider ``b_provider`` cools down to the same deadline, without counting a
    failure: the provider's quota is the project's, so any of its keys would only get the same
    429. The rows are locked in id order first, so two processes cooling the same project from
    two of its keys at once wait for each other instead of deadlocking.
    """
    if project_wide:
        rows = (
            sa.select(K.id)
            .where(
                sa.or_(
                    _CALLED,
                    sa.and_(
                        K.provider == sa.bindparam("b_provider"),
                        K.project == sa.bindparam("b_project", type_=K.project.type),
                        _IN_SERVICE,
                    ),
                )
            )
            .order_by(K.id)
            .with_for_update()
        )
        chosen = K.id.in_(rows.scalar_subquery())
    else:
        chosen = _CALLED
    counts = _CALLED if counted else sa.false()
    too_many = _TOO_MANY if counted else sa.false()
    return (
        sa.update(KEYS)
        .where(chosen)
        .values(
            consecutive_failures=sa.case(
                (counts, K.consecutive_failures + 1), else_=K.consecutive_failures
            ),
            # Never shorten a later deadline another failure (or a long retry delay) set; a
            # project's key that left service meanwhile keeps its own.
            cooldown_until=sa.case(
                (sa.and_(~_CALLED, ~_IN_SERVICE), K.cooldown_until),
                (K.cooldown_until > _DEADLINE, K.cooldown_until),
                else_=_DEADLINE,
            ),
            # Only a key still in service moves; an admin's disable stands.
            state=sa.case(
                (too_many, sa.literal("manual_review")),
                (_IN_SERVICE, sa.literal("cooldown")),
                else_=K.state,
            ),
            state_reason=sa.case((too_many, _REASON), else_=K.state_reason),
            version=K.version + 1,
            updated_at=NOW,
        )
        .returning(K.id, K.version, K.state, K.cooldown_until, K.consecutive_failures)
    )


#: Retryable: the called key cools down and counts a failure (see :func:`_failure`).
FAILED = _failure(project_wide=False)
#: A rate limit: :data:`FAILED`, and the rest of the key's project cools to the same deadline.
PROJECT_RATE_LIMITED = _failure(project_wide=True)

# An admin's key test is judged as any attempt (a 503 rests the key, a 429 its project, a
# rejected key goes to review) but stays out of the key's health: neither a failure in a row
# nor a success that clears them. Only what it cost counts, in the key's spend.
#: A key test's retryable failure: cools down like :data:`FAILED`, counts no failure.
TEST_FAILED = _failure(project_wide=False, counted=False)
#: A key test's rate limit: :data:`PROJECT_RATE_LIMITED`, counting no failure.
TEST_RATE_LIMITED = _failure(project_wide=True, counted=False)
#: A key test's success: its cost (one real image; nothing for the free check) adds to the
#: key's spend; the failure count, state and cooldown stay (a test never restores a key).
TEST_SUCCEEDED = (
    sa.update(KEYS)
    .where(K.id == _KEY_ID)
    .values(
        estimated_spend=K.estimated_spend + sa.bindparam("b_cost", type_=sa.Numeric(18, 6)),
        version=K.version + 1,
        updated_at=NOW,
    )
    .returning(K.id, K.version)
)

#: Until when a project rests (``b_provider``, ``b_project`` at ``b_now``): ``rests_until`` is
#: the earliest deadline of its in-service keys when none of them is eligible (a rate limit
#: cools them together), else None (``in_service`` counts them; 0 for an unknown project).
PROJECT_REST = sa.select(
    sa.func.count().label("in_service"),
    sa.case(
        (sa.func.count().filter(ELIGIBLE) == 0, sa.func.min(K.cooldown_until)), else_=sa.null()
    ).label("rests_until"),
).where(
    K.provider == sa.bindparam("b_provider"),
    K.project == sa.bindparam("b_project", type_=K.project.type),
    _IN_SERVICE,
)

#: Key rejected: the key waits in manual review for an admin (if it was still in service).
KEY_REJECTED = (
    sa.update(KEYS)
    .where(K.id == _KEY_ID, _IN_SERVICE)
    .values(
        state=KeyState.MANUAL_REVIEW, state_reason=_REASON, version=K.version + 1, updated_at=NOW
    )
    .returning(K.version)
)

#: Out of funds: the key and every in-service key of its billing group (``b_group``, None for
#: none) are taken out. A billing group is one account paying for several keys, so a depleted
#: signal on one holds for all of them. Groups are per provider: the same label under two
#: providers names two accounts.
OUT_OF_FUNDS = (
    sa.update(KEYS)
    .where(
        sa.or_(
            K.id == _KEY_ID,
            sa.and_(
                K.provider == sa.bindparam("b_provider"),
                K.billing_group == sa.bindparam("b_group", type_=K.billing_group.type),
            ),
        ),
        _IN_SERVICE,
    )
    .values(
        state=KeyState.OUT_OF_FUNDS, state_reason=_REASON, version=K.version + 1, updated_at=NOW
    )
    .returning(K.id, K.version)
)

#: A call through the proxy got an answer: the proxy works.
PROXY_SUCCEEDED = (
    sa.update(PROXIES)
    .where(PROXIES.c.id == sa.bindparam("b_proxy_id"))
    .values(consecutive_failures=0, last_ok_at=NOW)
)

#: A call through the proxy got no answer: the proxy's fault, counted on its health.
PROXY_FAILED = (
    sa.update(PROXIES)
    .where(PROXIES.c.id == sa.bindparam("b_proxy_id"))
    .values(
        consecutive_failures=PROXIES.c.consecutive_failures + 1,
        total_failures=PROXIES.c.total_failures + 1,
        last_error=_REASON,
        last_failure_at=NOW,
        updated_at=NOW,
    )
)
