"""The quota ledger (DESIGN 4.3, 4.12): reserve units at submission, settle at the end.

The generation pipeline calls, inside its own transaction:

- :func:`reserve` when a generation of N images of C units each is submitted: holds N x C
  units on the user's current cycle, then on their pack balances oldest first, or raises
  ``NoActiveSubscription`` / ``QuotaExhausted`` / ``PlanExcludesModel`` with nothing changed;
- :func:`settle` when it ends: consumes the units of the images that succeeded (the cycle's
  part first, then the packs' in order) and frees the rest;
- :func:`release` when it is abandoned before any image: frees the whole hold.

When the cycle covers the whole hold (the common case), reservation is one conditional UPDATE
(``used + reserved + units <= request_limit``), so concurrent submissions cannot overspend; a
CHECK constraint on the cycle says the same. Otherwise the cycle and the pack balances are
locked in one statement, in one order (cycle, then balances by id), the split is computed,
and each balance touched gets one UPDATE; CHECK constraints guard every balance.
Users only ever see :func:`bucket` of the cycle, and their packs exactly; :func:`exact_usage`
is for admins.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from nproxy_core.billing.models import BillingCycle, PackBalance, Plan
from nproxy_core.db import utcnow
from nproxy_core.errors import (
    NoActiveSubscription,
    PlanExcludesModel,
    QuotaExhausted,
    ValidationError,
)
from nproxy_core.i18n import _
from nproxy_core.pricing.models import UnitPrice
from nproxy_core.quota.models import HoldState, QuotaHold, QuotaHoldPack

log = logging.getLogger(__name__)

__all__ = [
    "HoldState",
    "QuotaHold",
    "QuotaUsage",
    "allows_model",
    "bucket",
    "current",
    "current_cycle",
    "exact_usage",
    "exhausted_message",
    "max_batch_now",
    "pack_usable",
    "release",
    "reserve",
    "settle",
    "usable_packs",
    "user_bucket",
]

# Messages users may see: they name the problem and never a count.
NO_SUBSCRIPTION_MESSAGE = _(
    "You have no active plan. Buy or renew a plan, or buy a credit pack, to generate images."
)
EXHAUSTED_MESSAGE = _(
    "Not enough units are left for that. "
    "Try a smaller batch or size, or renew your plan or buy a credit pack to continue."
)
USED_UP_MESSAGE = _(
    "This period's units are used up. Renew your plan or buy a credit pack to continue."
)


def exhausted_message(n: int, remaining: int) -> str:
    """Why a batch of ``n`` was refused, without a count the user did not already give.

    "Not enough for 4" tells only that fewer than 4 images' worth is left, which the refusal
    itself says.
    """
    if remaining <= 0:
        return USED_UP_MESSAGE
    if n <= 1:
        return EXHAUSTED_MESSAGE
    return _(
        "Not enough units left for ${count} images \u2014 try fewer, or renew your plan or buy "
        "a credit pack to continue.",
        mapping={"count": n},
    )


def max_batch_now(remaining: int, provider_max: int, unit_cost: int = 1) -> int:
    """The largest batch that fits now: the one exception to the bucket rule (DESIGN 4.3).

    It is exact only when fewer than a full batch remain, which a refused batch tells anyway.
    """
    return max(0, min(remaining // max(1, unit_cost), provider_max))


def bucket(remaining: int, request_limit: int) -> int:
    """What users see of their quota: 0, 20, 40, 60, 80 or 100 (percent left, rounded up)."""
    if request_limit <= 0 or remaining <= 0:
        return 0
    remaining = min(remaining, request_limit)
    # Integer arithmetic: ceil(5 * remaining / limit) without floating-point surprises.
    return 20 * -(-5 * remaining // request_limit)


def current(query: sa.Select, user_id: int, now: dt.datetime) -> sa.Select:
    """``query`` narrowed to the user's cycle giving access at ``now`` (``starts_at <= now <
    ends_at``; the latest one should two overlap)."""
    return (
        query.where(
            BillingCycle.user_id == user_id,
            BillingCycle.starts_at <= now,
            BillingCycle.ends_at > now,
        )
        .order_by(BillingCycle.starts_at.desc())
        .limit(1)
    )


def current_cycle(
    db: Session, user_id: int, now: dt.datetime | None = None, *, for_update: bool = False
) -> BillingCycle | None:
    """The cycle giving the user access at ``now`` (``starts_at <= now < ends_at``)."""
    query = current(sa.select(BillingCycle), user_id, now or utcnow())
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
        raise ValidationError(
            _("The ${name} must be a whole number.", mapping={"name": name}),
            fields={name: "invalid"},
        )
    return n


def allows_model(models: list[str] | None, model: str | None) -> bool:
    """Whether a plan's or pack's ``models`` (empty: all) let it pay for ``model``."""
    return model is None or not models or model in models


@dataclass(frozen=True)
class _Cycle:
    id: int
    remaining: int
    models: list[str]
    max_batch: int | None


@functools.cache
def _statements() -> tuple[sa.Select, sa.Update, sa.Update]:
    """The ledger's hot statements, built once with bound parameters: a hold costs no more
    Python than the SQL it sends (reading the cycle and its plan, taking, settling)."""
    read = current(
        sa.select(
            BillingCycle.id,
            (BillingCycle.request_limit - BillingCycle.used - BillingCycle.reserved).label("left"),
            Plan.models,
            Plan.max_batch,
            _override().label("override"),
        ).join(Plan, Plan.id == BillingCycle.plan_id),
        sa.bindparam("user_id"),
        sa.bindparam("now"),
    )
    take = (
        sa.update(BillingCycle)
        .where(
            BillingCycle.id == sa.bindparam("cycle_id"),
            BillingCycle.ends_at > sa.bindparam("now"),
            BillingCycle.used + BillingCycle.reserved + sa.bindparam("need", type_=sa.Integer)
            <= BillingCycle.request_limit,
        )
        .values(reserved=BillingCycle.reserved + sa.bindparam("need", type_=sa.Integer))
        .execution_options(synchronize_session=False)
    )
    close = (
        sa.update(BillingCycle)
        .where(BillingCycle.id == sa.bindparam("cycle_id"))
        .values(
            used=BillingCycle.used + sa.bindparam("consumed", type_=sa.Integer),
            reserved=BillingCycle.reserved - sa.bindparam("held", type_=sa.Integer),
        )
        .execution_options(synchronize_session=False)
    )
    return read, take, close


def _override() -> sa.ScalarSelect:
    """The admin's unit price of ``(:provider, :model, :resolution)``, NULL without one."""
    return (
        sa.select(UnitPrice.units)
        .where(
            UnitPrice.provider == sa.bindparam("provider", type_=sa.String),
            UnitPrice.model == sa.bindparam("model", type_=sa.String),
            UnitPrice.resolution == sa.bindparam("resolution", type_=sa.String),
        )
        .scalar_subquery()
    )


def _current(
    db: Session, user_id: int, now: dt.datetime, priced: tuple[str, str, str] | None = None
) -> tuple[_Cycle | None, int | None]:
    """The current cycle with its plan's terms, and the override of ``priced`` (provider,
    model, resolution), in one round trip when there is a cycle."""
    provider, model, resolution = priced or (None, None, None)
    key = {"provider": provider, "model": model, "resolution": resolution}
    row = db.execute(_statements()[0], {"user_id": user_id, "now": now, **key}).first()
    if row is not None:
        return _Cycle(row.id, row.left, list(row.models or ()), row.max_batch), row.override
    override = None if priced is None else db.scalar(sa.select(_override()), key)
    return None, override


def pack_usable(now: dt.datetime) -> sa.ColumnElement[bool]:
    """A pack balance holds can draw on at ``now``: not revoked, started, not expired, with
    units left."""
    return sa.and_(
        PackBalance.revoked_at.is_(None),
        PackBalance.starts_at <= now,
        PackBalance.expires_at > now,
        PackBalance.used + PackBalance.reserved < PackBalance.units,
    )


def _usable_packs_query(user_id: int, now: dt.datetime) -> sa.Select:
    return (
        sa.select(PackBalance)
        .where(PackBalance.user_id == user_id, pack_usable(now))
        .order_by(PackBalance.id)
    )


def usable_packs(db: Session, user_id: int, now: dt.datetime | None = None) -> list[PackBalance]:
    """The user's pack balances with units left, oldest first: the order holds draw on them."""
    return list(db.scalars(_usable_packs_query(user_id, now or utcnow())))


def reserve(
    db: Session,
    user_id: int,
    n: int,
    *,
    unit_cost: int = 1,
    model: str | None = None,
    priced: tuple[str, str, str] | None = None,
    reference: str | None = None,
    now: dt.datetime | None = None,
) -> QuotaHold:
    """Hold ``n`` images of ``unit_cost`` units each, atomically, and record the hold.

    With ``priced`` (provider, model, resolution), an admin's unit price for it wins over
    ``unit_cost`` (the default price): read with the cycle, so pricing costs no round trip.

    The current cycle pays first (if its plan includes ``model``), then the user's packs that
    allow ``model``, oldest first. Raises :class:`~nproxy_core.errors.NoActiveSubscription`
    with neither a cycle nor a pack, :class:`~nproxy_core.errors.PlanExcludesModel` when the
    plan leaves ``model`` out and no pack covers it, :class:`~nproxy_core.errors.QuotaExhausted`
    when fewer units are left, and ValidationError for a batch larger than the plan allows.
    Nothing changes when it raises.
    """
    n = _check_count(n, "batch_size")
    if n < 1:
        raise ValidationError(
            _("The batch size must be at least 1."), fields={"batch_size": "invalid"}
        )
    unit_cost = _check_count(unit_cost, "unit_cost")
    if unit_cost < 1:
        raise ValidationError(
            _("An image costs at least one unit."), fields={"unit_cost": "invalid"}
        )
    now = now or utcnow()
    cycle, override = _current(db, user_id, now, priced)
    unit_cost = override or unit_cost
    need = n * unit_cost
    if cycle is not None and not allows_model(cycle.models, model):
        cycle_id = None
    else:
        cycle_id = None if cycle is None else cycle.id
    if cycle_id is not None and cycle.max_batch is not None and n > cycle.max_batch:
        raise ValidationError(
            _(
                "Your plan makes at most ${max_batch} images at a time.",
                mapping={"max_batch": cycle.max_batch},
            ),
            fields={"batch_size": "out_of_range"},
        )
    if cycle_id is not None and cycle.remaining >= need:
        # The common case in one statement. The condition is evaluated on the row as it is
        # once any concurrent writer has committed (PostgreSQL re-checks it after the row
        # lock), so two reservations can never both take the last units.
        result = db.execute(_statements()[1], {"cycle_id": cycle_id, "now": now, "need": need})
        if result.rowcount == 1:
            return _record(db, cycle_id, need, unit_cost, need, [], reference, now)
    return _reserve_with_packs(db, user_id, n, unit_cost, model, cycle, cycle_id, reference, now)


def _reserve_with_packs(
    db: Session,
    user_id: int,
    n: int,
    unit_cost: int,
    model: str | None,
    cycle: _Cycle | None,
    cycle_id: int | None,
    reference: str | None,
    now: dt.datetime,
) -> QuotaHold:
    """The cycle could not cover the hold alone: lock it and the packs, split, then write."""
    need = n * unit_cost
    cycle_take = 0
    if cycle_id is not None:
        left = db.scalar(
            sa.select(BillingCycle.request_limit - BillingCycle.used - BillingCycle.reserved)
            .where(BillingCycle.id == cycle_id, BillingCycle.ends_at > now)
            .with_for_update()
        )
        cycle_take = min(need, max(0, left or 0))
    # Locked in id order, after the cycle: every writer takes these locks in the same order.
    balances = [
        b
        for b in db.scalars(
            _usable_packs_query(user_id, now)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if allows_model(b.models, model)
    ]
    takes: list[tuple[PackBalance, int]] = []
    short = need - cycle_take
    for balance in balances:
        if short == 0:
            break
        take = min(short, balance.units - balance.used - balance.reserved)
        takes.append((balance, take))
        short -= take
    if short > 0:
        if cycle is None and not balances:
            raise NoActiveSubscription(NO_SUBSCRIPTION_MESSAGE)
        if cycle is not None and cycle_id is None and not balances:
            raise PlanExcludesModel(
                _(
                    "Your plan does not include ${model}. Choose another model, or change your "
                    "plan or buy a credit pack to use it.",
                    mapping={"model": model},
                ),
                fields={"model": "not_in_plan"},
            )
        available = need - short
        raise QuotaExhausted(exhausted_message(n, available // unit_cost))
    if cycle_take:
        db.execute(
            sa.update(BillingCycle)
            .where(BillingCycle.id == cycle_id)
            .values(reserved=BillingCycle.reserved + cycle_take)
            .execution_options(synchronize_session=False)
        )
    for balance, take in takes:
        balance.reserved += take
    return _record(
        db,
        cycle_id if cycle_take else None,
        need,
        unit_cost,
        cycle_take,
        [(b.id, take) for b, take in takes],
        reference,
        now,
    )


def _record(
    db: Session,
    cycle_id: int | None,
    amount: int,
    unit_cost: int,
    cycle_units: int,
    packs: list[tuple[int, int]],
    reference: str | None,
    now: dt.datetime,
) -> QuotaHold:
    hold = QuotaHold(
        cycle_id=cycle_id,
        amount=amount,
        unit_cost=unit_cost,
        cycle_units=cycle_units,
        reference=None if reference is None else str(reference)[:128],
        created_at=now,
        packs=[QuotaHoldPack(balance_id=b, amount=take) for b, take in packs],
    )
    db.add(hold)
    db.flush()
    if cycle_id is not None:
        _forget_cycle(db, cycle_id)
    return hold


def _forget_cycle(db: Session, cycle_id: int) -> None:
    # A copy of the cycle this session already holds is stale after a bulk UPDATE. Only look
    # in the identity map: ``db.get`` would load the row (a SELECT per job) just to forget it.
    cycle = db.identity_map.get(identity_key(BillingCycle, cycle_id))
    if cycle is not None:
        db.expire(cycle)


def _locked_hold(db: Session, hold: QuotaHold | int) -> QuotaHold | None:
    hold_id = hold.id if isinstance(hold, QuotaHold) else _check_count(hold, "hold")
    return db.scalar(
        sa.select(QuotaHold)
        .where(QuotaHold.id == hold_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _close(
    db: Session,
    hold: QuotaHold | int,
    images: int,
    state: HoldState,
    now: dt.datetime | None,
    costs: Sequence[int | None] | None = None,
) -> QuotaHold:
    row = _locked_hold(db, hold)
    if row is None:
        raise ValidationError(_("No such quota hold."), fields={"hold": "unknown"})
    if row.state != HoldState.HELD:
        # Closing twice is a no-op: a retried job must not count its images twice, and a job
        # that finishes after the sweeper released its hold costs the user nothing.
        log.info("quota hold %s is already %s; left as it is", row.id, row.state)
        return row
    if not 0 <= images * row.unit_cost <= row.amount:
        raise ValidationError(
            _("The number of successful images must be between 0 and the batch size."),
            fields={"succeeded": "invalid"},
        )
    if costs is not None and len(costs) != images:
        raise ValidationError(
            _("Give one cost for each successful image."), fields={"costs": "invalid"}
        )
    # An image made by a fallback costs the lower of the two prices (DESIGN 4.13).
    consumed = sum(
        row.unit_cost if cost is None else max(0, min(cost, row.unit_cost))
        for cost in (costs if costs is not None else [None] * images)
    )
    # The cycle's part is consumed first, then the packs' in the order they were drawn.
    from_cycle = min(consumed, row.cycle_units)
    if row.cycle_id is not None and row.cycle_units:
        db.execute(
            _statements()[2],
            {"cycle_id": row.cycle_id, "consumed": from_cycle, "held": row.cycle_units},
        )
        _forget_cycle(db, row.cycle_id)
    rest = consumed - from_cycle
    if row.cycle_units < row.amount:
        for part in row.packs:
            part.consumed = min(rest, part.amount)
            rest -= part.consumed
            db.execute(
                sa.update(PackBalance)
                .where(PackBalance.id == part.balance_id)
                .values(
                    used=PackBalance.used + part.consumed,
                    reserved=PackBalance.reserved - part.amount,
                )
                .execution_options(synchronize_session=False)
            )
            balance = db.identity_map.get(identity_key(PackBalance, part.balance_id))
            if balance is not None:
                db.expire(balance)
    row.state = state
    row.consumed = consumed
    row.closed_at = now or utcnow()
    return row


def settle(
    db: Session,
    hold: QuotaHold | int,
    succeeded: int,
    *,
    costs: Sequence[int | None] | None = None,
    now: dt.datetime | None = None,
) -> QuotaHold:
    """Consume the units of ``succeeded`` images of the hold and free the rest. Idempotent.

    Settles against the hold's own cycle even if that cycle has ended since: a job accepted
    before the end still completes.
    """
    succeeded = _check_count(succeeded, "succeeded")
    return _close(db, hold, succeeded, HoldState.SETTLED, now, costs)


def release(db: Session, hold: QuotaHold | int, *, now: dt.datetime | None = None) -> QuotaHold:
    """Free the whole hold (nothing was made). Idempotent."""
    return _close(db, hold, 0, HoldState.RELEASED, now)
