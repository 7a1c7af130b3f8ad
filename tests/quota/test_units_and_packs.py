"""Holds in units on the cycle and on pack balances (DESIGN 4.12), against real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.billing.models import BillingCycle, PackBalance, Plan
from nproxy_core.db import utcnow
from nproxy_core.errors import (
    NoActiveSubscription,
    PlanExcludesModel,
    QuotaExhausted,
    ValidationError,
)
from nproxy_core.quota import services as quota
from nproxy_core.quota.models import HoldState, QuotaHold, QuotaHoldPack


def cycle_counters(db: Session, cycle_id: int) -> tuple[int, int]:
    db.expire_all()
    cycle = db.get(BillingCycle, cycle_id)
    return cycle.used, cycle.reserved


def pack_counters(db: Session, balance_id: int) -> tuple[int, int]:
    db.expire_all()
    balance = db.get(PackBalance, balance_id)
    return balance.used, balance.reserved


def test_30_units_make_30_one_unit_images_or_5_six_unit_images_and_not_one_more(
    db, user_factory, make_cycle
):
    flash = user_factory()
    flash_cycle = make_cycle(flash, request_limit=30)
    for _ in range(30):
        quota.settle(db, quota.reserve(db, flash.id, 1, unit_cost=1), 1)
    with pytest.raises(QuotaExhausted):
        quota.reserve(db, flash.id, 1, unit_cost=1)
    db.commit()
    assert cycle_counters(db, flash_cycle.id) == (30, 0)

    pro = user_factory()
    pro_cycle = make_cycle(pro, request_limit=30)
    buckets = []
    for _ in range(5):
        quota.settle(db, quota.reserve(db, pro.id, 1, unit_cost=6), 1)
        buckets.append(quota.user_bucket(db, pro.id))
    with pytest.raises(QuotaExhausted):
        quota.reserve(db, pro.id, 1, unit_cost=6)
    db.commit()
    assert cycle_counters(db, pro_cycle.id) == (30, 0)
    # The bucket follows units: 24, 18, 12, 6 and 0 of 30 left.
    assert buckets == [80, 60, 40, 20, 0]


def test_a_hold_is_the_batch_times_the_unit_cost_and_settles_per_image(
    db, user_factory, make_cycle
):
    user = user_factory()
    cycle = make_cycle(user, request_limit=30)
    hold = quota.reserve(db, user.id, 4, unit_cost=3, reference="g")
    db.commit()
    assert (hold.amount, hold.unit_cost, hold.cycle_units) == (12, 3, 12)
    assert cycle_counters(db, cycle.id) == (0, 12)
    quota.settle(db, hold.id, 3)
    db.commit()
    assert cycle_counters(db, cycle.id) == (9, 0)
    assert db.get(QuotaHold, hold.id).consumed == 9
    with pytest.raises(ValidationError):
        quota.settle(db, quota.reserve(db, user.id, 1, unit_cost=3), 2)
    db.rollback()


def test_packs_pay_after_the_cycle_oldest_first_and_settle_in_that_order(
    db, user_factory, make_cycle, make_pack
):
    user = user_factory()
    cycle = make_cycle(user, request_limit=30, used=25)
    older = make_pack(user, 10)
    newer = make_pack(user, 10)
    hold = quota.reserve(db, user.id, 3, unit_cost=6, reference="g")
    db.commit()
    # 18 units: the cycle's last 5, all 10 of the older pack, 3 of the newer.
    assert (hold.cycle_id, hold.cycle_units) == (cycle.id, 5)
    parts = db.execute(
        sa.select(QuotaHoldPack.balance_id, QuotaHoldPack.amount).where(
            QuotaHoldPack.hold_id == hold.id
        )
    ).all()
    assert sorted(parts) == [(older.id, 10), (newer.id, 3)]
    assert cycle_counters(db, cycle.id) == (25, 5)
    assert pack_counters(db, older.id) == (0, 10)
    assert pack_counters(db, newer.id) == (0, 3)

    # Two of three images made: 12 units, the cycle's part first, then the older pack's.
    quota.settle(db, hold.id, 2)
    db.commit()
    assert cycle_counters(db, cycle.id) == (30, 0)
    assert pack_counters(db, older.id) == (7, 0)
    assert pack_counters(db, newer.id) == (0, 0)
    # Settling again changes nothing.
    quota.settle(db, hold.id, 3)
    db.commit()
    assert pack_counters(db, older.id) == (7, 0)


def test_release_frees_every_part(db, user_factory, make_cycle, make_pack):
    user = user_factory()
    cycle = make_cycle(user, request_limit=10, used=8)
    pack = make_pack(user, 10)
    hold = quota.reserve(db, user.id, 2, unit_cost=3)
    db.commit()
    assert cycle_counters(db, cycle.id) == (8, 2)
    assert pack_counters(db, pack.id) == (0, 4)
    quota.release(db, hold.id)
    db.commit()
    assert cycle_counters(db, cycle.id) == (8, 0)
    assert pack_counters(db, pack.id) == (0, 0)
    assert db.get(QuotaHold, hold.id).state == HoldState.RELEASED


def test_with_packs_and_no_cycle_a_user_can_still_generate(db, user_factory, make_pack):
    user = user_factory()
    with pytest.raises(NoActiveSubscription):
        quota.reserve(db, user.id, 1)
    db.rollback()
    pack = make_pack(user, 6)
    hold = quota.reserve(db, user.id, 2, unit_cost=3)
    db.commit()
    assert (hold.cycle_id, hold.cycle_units) == (None, 0)
    assert pack_counters(db, pack.id) == (0, 6)
    # Its one pack spoken for, the user has nothing to pay with: buy a plan or a pack.
    with pytest.raises(NoActiveSubscription):
        quota.reserve(db, user.id, 1)
    db.rollback()


def test_expired_revoked_and_used_up_packs_are_not_drawn(db, user_factory, make_pack):
    user = user_factory()
    make_pack(user, 10, expires_at=utcnow() - dt.timedelta(seconds=1))
    make_pack(user, 10, revoked=True)
    make_pack(user, 10, used=10)
    with pytest.raises(NoActiveSubscription):
        quota.reserve(db, user.id, 1)
    db.rollback()


def _limit_plan(db: Session, *, models: list[str] | None = None, max_batch: int | None = None):
    plan = db.scalar(sa.select(Plan).where(Plan.code == "monthly"))
    plan.models = models or []
    plan.max_batch = max_batch
    db.commit()


def test_a_plan_that_leaves_a_model_out_refuses_it_unless_a_pack_pays(
    db, user_factory, make_cycle, make_pack
):
    _limit_plan(db, models=["flash"])
    user = user_factory()
    cycle = make_cycle(user, request_limit=30)
    quota.reserve(db, user.id, 1, model="flash")
    db.commit()
    with pytest.raises(PlanExcludesModel) as refused:
        quota.reserve(db, user.id, 1, unit_cost=6, model="pro")
    db.rollback()
    assert refused.value.status == 403
    assert "pro" in refused.value.message

    # A pack for every model pays for it; the plan's cycle is left alone.
    pack = make_pack(user, 12)
    hold = quota.reserve(db, user.id, 2, unit_cost=6, model="pro")
    db.commit()
    assert (hold.cycle_id, hold.cycle_units) == (None, 0)
    assert cycle_counters(db, cycle.id) == (0, 1)
    assert pack_counters(db, pack.id) == (0, 12)
    # A pack for other models only does not.
    other = user_factory()
    make_cycle(other, request_limit=30)
    make_pack(other, 12, models=("flash",))
    with pytest.raises(PlanExcludesModel):
        quota.reserve(db, other.id, 1, model="pro")
    db.rollback()


def test_a_plans_max_batch_caps_the_batch(db, user_factory, make_cycle):
    _limit_plan(db, max_batch=2)
    user = user_factory()
    cycle = make_cycle(user, request_limit=30)
    with pytest.raises(ValidationError) as refused:
        quota.reserve(db, user.id, 3)
    db.rollback()
    assert refused.value.fields == {"batch_size": "out_of_range"}
    assert "at most 2" in refused.value.message
    quota.reserve(db, user.id, 2)
    db.commit()
    assert cycle_counters(db, cycle.id) == (0, 2)


def test_100_threads_with_mixed_costs_never_overspend_a_cycle_or_two_packs(
    db, engine, user_factory, make_cycle, make_pack
):
    user = user_factory()
    cycle = make_cycle(user, request_limit=60, used=20)
    first = make_pack(user, 30)
    second = make_pack(user, 30, used=5)
    capacity = 40 + 30 + 25
    barrier = threading.Barrier(100)
    outcomes: list[tuple[str, int, int]] = []
    lock = threading.Lock()
    rng = random.Random(2026)
    asks = [(rng.choice((1, 2, 3, 4)), rng.choice((1, 3, 6))) for _ in range(100)]

    def submit(n: int, cost: int) -> None:
        with Session(bind=engine) as session:
            barrier.wait()
            try:
                hold = quota.reserve(session, user.id, n, unit_cost=cost)
                # Some images fail: settle what a job would, in its own transaction.
                session.commit()
                made = rng.randint(0, n)
                quota.settle(session, hold.id, made)
                session.commit()
                result = ("ok", n * cost, made * cost)
            except QuotaExhausted:
                session.rollback()
                result = ("exhausted", n * cost, 0)
            except Exception as exc:  # surfaced by the assertion below
                session.rollback()
                result = (f"error: {exc!r}", 0, 0)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=submit, args=ask) for ask in asks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {o[0] for o in outcomes} <= {"ok", "exhausted"}, outcomes
    assert any(o[0] == "exhausted" for o in outcomes)
    consumed = sum(o[2] for o in outcomes)
    db.expire_all()
    balances = [db.get(BillingCycle, cycle.id), db.get(PackBalance, first.id)]
    balances.append(db.get(PackBalance, second.id))
    assert all(b.reserved == 0 for b in balances)
    assert balances[0].used <= 60 and balances[1].used <= 30 and balances[2].used <= 30
    # Exactly what settled was spent, and never more than there was.
    assert balances[0].used - 20 + balances[1].used + balances[2].used - 5 == consumed
    assert consumed <= capacity
    holds = db.scalars(sa.select(QuotaHold)).all()
    assert len(holds) == sum(1 for o in outcomes if o[0] == "ok")
    for hold in holds:
        assert hold.cycle_units + sum(p.amount for p in hold.packs) == hold.amount


def test_an_admins_price_read_with_the_cycle_wins_over_the_default(
    db, user_factory, make_cycle, make_pack
):
    from nproxy_core.pricing.models import UnitPrice

    db.add(UnitPrice(provider="p", model="m", resolution="4k", units=5, updated_by="ops"))
    db.commit()
    with_cycle = user_factory()
    cycle = make_cycle(with_cycle, request_limit=30)
    hold = quota.reserve(db, with_cycle.id, 2, unit_cost=6, priced=("p", "m", "4k"))
    assert (hold.unit_cost, hold.amount) == (5, 10)
    other = quota.reserve(db, with_cycle.id, 2, unit_cost=6, priced=("p", "m", "1k"))
    assert (other.unit_cost, other.amount) == (6, 12)
    db.commit()
    assert cycle_counters(db, cycle.id) == (0, 22)
    # With packs alone the price is read on its own.
    packs_only = user_factory()
    make_pack(packs_only, 10)
    hold = quota.reserve(db, packs_only.id, 2, unit_cost=6, priced=("p", "m", "4k"))
    assert (hold.unit_cost, hold.amount, hold.cycle_id) == (5, 10, None)
    db.commit()
