"""The quota ledger (DESIGN 4.3): reserve requests at submission, settle at the end.

The generation pipeline calls, inside its own transaction:

- :func:`reserve` when a generation of N images is submitted: holds N requests on the user's
  current cycle or raises ``NoActiveSubscription`` / ``QuotaExhausted``;
- :func:`settle` when it ends: consumes the images that succeeded and frees the rest;
- :func:`release` when it is abandoned before any image: frees the whole hold.

Reservation is one conditional UPDATE (``used + reserved + n <= request_limit``), so
concurrent submissions cannot overspend; a CHECK constraint on the cycle says the same.
Users only ever see :func:`bucket`; :func:`exact_usage` is for admins.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from nproxy_core.billing.models import BillingCycle
from nproxy_core.db import utcnow
from nproxy_core.errors import NoActiveSubscription, QuotaExhausted, ValidationError
from nproxy_core.quota.models import HoldState, QuotaHold

log = logging.getLogger(__name__)

__all__ = [
    "HoldState",
    "QuotaHold",
    "QuotaUsage",
    "bucket",
    "current_cycle",
    "exact_usage",
    "exhausted_message",
    "max_batch_now",
    "release",
    "reserve",
    "settle",
    "user_bucket",
]

# Messages users may see: they name the problem and never a count.
NO_SUBSCRIPTION_MESSAGE = "You have no active plan. Buy or renew a plan to generate images."
EXHAUSTED_MESSAGE = (
    "Not enough requests are left in this period for that. "
    "Try a smaller batch, or renew your plan to continue."
)
USED_UP_MESSAGE = "This period's requests are used up. Renew your plan to continue."


def exhausted_message(n: int, remaining: int) -> str:
    """Why a batch of ``n`` was refused, without a count the user did not already give.

    "Not enough for 4" tells only that fewer than 4 are left, which the refusal itself says.
    """
    if remaining <= 0:
        return USED_UP_MESSAGE
    if n <= 1:
        return EXHAUSTED_MESSAGE
    return f"Not enough left for {n} images \u2014 try fewer, or renew your plan to continue."


def max_batch_now(remaining: int, provider_max: int) -> int:
    """The largest batch that fits now: the one exception to the bucket rule (DESIGN 4.3).

    It is exact only when fewer than a full batch remain, which a refused batch tells anyway.
    """
    return max(0, min(remaining, provider_max))


def bucket(remaining: int, request_limit: int) -> int:
    """What users see of their quota: 0, 20, 40, 60, 80 or 100 (percent left, rounded up)."""
    if request_limit <= 0 or remaining <= 0:
        return 0
    remaining = min(remaining, request_limit)
    # Integer arithmetic: ceil(5 * remaining / limit) without floating-point surprises.
    return 20 * -(-5 * remaining // request_limit)


def current_cycle(
    db: Session, user_id: int, now: dt.datetime | None = None, *, for_update: bool = False
) -> BillingCycle | None:
    """The cycle giving the user access at ``now`` (``starts_at <= now < ends_at``)."""
    now = now or utcnow()
    query = (
        sa.select(BillingCycle)
        .where(
            BillingCycle.user_id == user_id,
            BillingCycle.starts_at <= now,
            BillingCycle.ends_at > now,
        )
        .order_by(BillingCycle.starts_at.desc())
        .limit(1)
    )
    if for_update:
        query = query.with_for_update()
    return db.scalar(query)


def user_bucket(db: Session, user_id: int, now: dt.datetime | None = None) -> int:
    cycle = current_cycle(db, user_id, now)
    return 0 if cycle is None else bucket(cycle.remaining, cycle.request_limit)


@dataclass(frozen=True)
class QuotaUsage:
    """Exact numbers of the current cycle: for admins only, never for a user-facing answer."""

    cycle_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    request_limit: int
    used: int
    reserved: int

    @property
    def remaining(self) -> int:
        return self.request_limit - self.used - self.reserved

    @property
    def bucket(self) -> int:
        return bucket(self.remaining, self.request_limit)


def exact_usage(db: Session, user_id: int, now: dt.datetime | None = None) -> QuotaUsage | None:
    """The user's current cycle in exact numbers, or None without one. Admin pages only."""
    cycle = current_cycle(db, user_id, now)
    if cycle is None:
        return None
    return QuotaUsage(
        cycle_id=cycle.id,
        starts_at=cycle.starts_at,
        ends_at=cycle.ends_at,
        request_limit=cycle.request_limit,
        used=cycle.used,
        reserved=cycle.reserved,
    )


def _check_count(n: object, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValidationError(f"The {name} must be a whole number.", fields={name: "invalid"})
    return n


def reserve(
    db: Session,
    user_id: int,
    n: int,
    *,
    reference: str | None = None,
    now: dt.datetime | None = None,
) -> QuotaHold:
    """Hold ``n`` requests on the user's current cycle, atomically, and record the hold.

    Raises :class:`~nproxy_core.errors.NoActiveSubscription` when no cycle is current and
    :class:`~nproxy_core.errors.QuotaExhausted` when fewer than ``n`` requests are left.
    Nothing changes when it raises.
    """
    n = _check_count(n, "batch_size")
    if n < 1:
        raise ValidationError(
            "The batch size must be at least 1.", fields={"batch_size": "invalid"}
        )
    now = now or utcnow()
    cycle = current_cycle(db, user_id, now)
    if cycle is None:
        raise NoActiveSubscription(NO_SUBSCRIPTION_MESSAGE)
    # The condition is evaluated on the row as it is once any concurrent writer has
    # committed (PostgreSQL re-checks it after the row lock), so two reservations can never
    # both take the last requests.
    result = db.execute(
        sa.update(BillingCycle)
        .where(
            BillingCycle.id == cycle.id,
            BillingCycle.ends_at > now,
            BillingCycle.used + BillingCycle.reserved + n <= BillingCycle.request_limit,
        )
        .values(reserved=BillingCycle.reserved + n)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        remaining = db.scalar(
            sa.select(BillingCycle.request_limit - BillingCycle.used - BillingCycle.reserved).where(
                BillingCycle.id == cycle.id
            )
        )
        raise QuotaExhausted(exhausted_message(n, remaining or 0))
    hold = QuotaHold(
        cycle_id=cycle.id,
        amount=n,
        reference=None if reference is None else str(reference)[:128],
        created_at=now,
    )
    db.add(hold)
    db.flush()
    # The identity map's copy of the cycle is stale after a bulk UPDATE.
    db.expire(cycle)
    return hold


def _locked_hold(db: Session, hold: QuotaHold | int) -> QuotaHold | None:
    hold_id = hold.id if isinstance(hold, QuotaHold) else _check_count(hold, "hold")
    return db.scalar(
        sa.select(QuotaHold)
        .where(QuotaHold.id == hold_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _close(
    db: Session, hold: QuotaHold | int, consumed: int, state: HoldState, now: dt.datetime | None
) -> QuotaHold:
    row = _locked_hold(db, hold)
    if row is None:
        raise ValidationError("No such quota hold.", fields={"hold": "unknown"})
    if row.state != HoldState.HELD:
        # Closing twice is a no-op: a retried job must not count its images twice, and a job
        # that finishes after the sweeper released its hold costs the user nothing.
        log.info("quota hold %s is already %s; left as it is", row.id, row.state)
        return row
    if not 0 <= consumed <= row.amount:
        raise ValidationError(
            "The number of successful images must be between 0 and the batch size.",
            fields={"succeeded": "invalid"},
        )
    db.execute(
        sa.update(BillingCycle)
        .where(BillingCycle.id == row.cycle_id)
        .values(
            used=BillingCycle.used + consumed,
            reserved=BillingCycle.reserved - row.amount,
        )
        .execution_options(synchronize_session=False)
    )
    row.state = state
    row.consumed = consumed
    row.closed_at = now or utcnow()
    # A copy of the cycle this session already holds is stale after the bulk UPDATE. Only
    # look in the identity map: ``db.get`` would load the row (a SELECT per finished job) just
    # to forget it.
    cycle = db.identity_map.get(identity_key(BillingCycle, row.cycle_id))
    if cycle is not None:
        db.expire(cycle)
    return row


def settle(
    db: Session, hold: QuotaHold | int, succeeded: int, *, now: dt.datetime | None = None
) -> QuotaHold:
    """Consume ``succeeded`` requests of the hold and free the rest. Idempotent.

    Settles against the hold's own cycle even if that cycle has ended since: a job accepted
    before the end still completes.
    """
    succeeded = _check_count(succeeded, "succeeded")
    return _close(db, hold, succeeded, HoldState.SETTLED, now)


def release(db: Session, hold: QuotaHold | int, *, now: dt.datetime | None = None) -> QuotaHold:
    """Free the whole hold (nothing was made). Idempotent."""
    return _close(db, hold, 0, HoldState.RELEASED, now)
