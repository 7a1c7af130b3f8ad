"""Cycle dates (plain rules) and where activation puts a paid cycle (real database)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from nproxy_core.billing.activation import activate_cycle
from nproxy_core.billing.cycles import Span, add_months, is_current, schedule_paid_cycle
from nproxy_core.billing.models import BillingCycle
from nproxy_core.billing.plan import Plan
from nproxy_core.config import ConfigurationError
from nproxy_core.quota.summary import subscription_summary

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --- calendar months ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (at(2025, 1, 31, 10, 30), 1, at(2025, 2, 28, 10, 30)),
        (at(2024, 1, 31, 10, 30), 1, at(2024, 2, 29, 10, 30)),  # leap year
        (at(2024, 1, 30), 1, at(2024, 2, 29)),
        (at(2025, 3, 31), 1, at(2025, 4, 30)),
        (at(2025, 2, 28), 1, at(2025, 3, 28)),
        (at(2025, 1, 15, 23, 59, 59, 999999), 1, at(2025, 2, 15, 23, 59, 59, 999999)),
        (at(2025, 12, 31), 1, at(2026, 1, 31)),
        (at(2025, 11, 30), 3, at(2026, 2, 28)),
        (at(2024, 2, 29), 12, at(2025, 2, 28)),
        (at(2025, 5, 31), 13, at(2026, 6, 30)),
    ],
)
def test_add_months_clamps_the_day_to_the_months_end(start, months, end):
    assert add_months(start, months) == end


def test_access_is_from_start_up_to_but_not_including_the_end():
    start, end = at(2025, 1, 1), at(2025, 2, 1)
    assert is_current(start, end, start)
    assert is_current(start, end, end - dt.timedelta(microseconds=1))
    assert not is_current(start, end, end)
    assert not is_current(start, end, start - dt.timedelta(microseconds=1))


# --- placing a paid cycle --------------------------------------------------------------------


def test_first_cycle_starts_at_confirmation():
    now = at(2025, 1, 31, 12)
    moved, new = schedule_paid_cycle(now, [], 1)
    assert moved == []
    assert (new.starts_at, new.ends_at) == (now, at(2025, 2, 28, 12))


def test_early_renewal_starts_at_the_end_of_the_current_cycle():
    now = at(2025, 2, 20)
    current = Span(at(2025, 1, 31, 12), at(2025, 2, 28, 12), 1)
    moved, new = schedule_paid_cycle(now, [current], 1)
    assert moved == [current]
    assert (new.starts_at, new.ends_at) == (at(2025, 2, 28, 12), at(2025, 3, 28, 12))


def test_renewing_twice_queues_after_the_latest():
    now = at(2025, 2, 20)
    cycles = [
        Span(at(2025, 1, 31), at(2025, 2, 28), 1),
        Span(at(2025, 2, 28), at(2025, 3, 28), 1),
    ]
    _, new = schedule_paid_cycle(now, cycles, 1)
    assert (new.starts_at, new.ends_at) == (at(2025, 3, 28), at(2025, 4, 28))


def test_renewal_after_expiry_starts_at_confirmation():
    now = at(2025, 4, 10, 8)
    expired = Span(at(2025, 1, 31), at(2025, 2, 28), 1)
    moved, new = schedule_paid_cycle(now, [expired], 1)
    assert moved == [expired]
    assert (new.starts_at, new.ends_at) == (now, at(2025, 5, 10, 8))


def test_renewal_with_exhausted_quota_starts_now_and_ends_the_current_cycle():
    now = at(2025, 2, 10)
    current = Span(at(2025, 1, 31), at(2025, 2, 28), 1, exhausted=True)
    moved, new = schedule_paid_cycle(now, [current], 1)
    assert (moved[0].starts_at, moved[0].ends_at) == (at(2025, 1, 31), now)
    assert (new.starts_at, new.ends_at) == (now, at(2025, 3, 10))


def test_exhausted_quota_pulls_queued_cycles_forward_without_losing_days():
    now = at(2025, 2, 10)
    current = Span(at(2025, 1, 31), at(2025, 2, 28), 1, exhausted=True)
    queued = Span(at(2025, 2, 28), at(2025, 3, 28), 1)
    moved, new = schedule_paid_cycle(now, [current, queued], 1)
    assert moved[0].ends_at == now
    assert (moved[1].starts_at, moved[1].ends_at) == (now, at(2025, 3, 10))
    assert (new.starts_at, new.ends_at) == (at(2025, 3, 10), at(2025, 4, 10))


def test_a_cycle_with_quota_left_is_not_ended_early():
    now = at(2025, 2, 10)
    current = Span(at(2025, 1, 31), at(2025, 2, 28), 1, exhausted=False)
    moved, new = schedule_paid_cycle(now, [current], 1)
    assert moved[0].ends_at == at(2025, 2, 28)
    assert new.starts_at == at(2025, 2, 28)


# --- the plan from settings ------------------------------------------------------------------


def test_plan_from_default_settings():
    from nproxy_core.config import DEFAULTS

    plan = Plan.from_settings(DEFAULTS)
    assert plan == Plan("Monthly", Decimal("9.99"), "USD", 300, 1)
    assert plan.public_json() == {
        "name": "Monthly",
        "price": {"amount": "9.99", "currency": "USD"},
        "period_months": 1,
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("nproxy.plan.price", "free"),
        ("nproxy.plan.price", "-1"),
        ("nproxy.plan.price", "0"),
        ("nproxy.plan.price", "NaN"),
        ("nproxy.plan.price", "0.000000001"),
        ("nproxy.plan.currency", "us dollars"),
        ("nproxy.plan.name", " "),
    ],
)
def test_malformed_plan_settings_name_the_setting(key, value):
    from nproxy_core.config import DEFAULTS

    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        Plan.from_settings({**DEFAULTS, key: value})


def test_malformed_plan_stops_start_up(make_app):
    with pytest.raises(ConfigurationError, match=r"nproxy\.plan\.price"):
        make_app(nproxy__plan__price="nine")


# --- activation in the database --------------------------------------------------------------

PLAN = Plan("Monthly", Decimal("9.99"), "USD", 300, 1)


def cycles_of(db, user_id):
    db.expire_all()
    return db.scalars(
        sa.select(BillingCycle).where(BillingCycle.user_id == user_id).order_by(BillingCycle.id)
    ).all()


def test_activation_sequence_early_renewal_then_exhausted_renewal(db, user_factory):
    user = user_factory()
    t0 = at(2025, 1, 31, 9)
    first = activate_cycle(db, PLAN, user.id, t0)
    db.commit()
    assert (first.starts_at, first.ends_at) == (t0, at(2025, 2, 28, 9))

    # Early renewal: no days lost.
    second = activate_cycle(db, PLAN, user.id, at(2025, 2, 20))
    db.commit()
    assert (second.starts_at, second.ends_at) == (at(2025, 2, 28, 9), at(2025, 3, 28, 9))
    assert subscription_summary(db, user.id, at(2025, 2, 20))["subscription"] == {
        "status": "active",
        "current_period_end": "2025-02-28T09:00:00+00:00",
        "plan": {"code": "monthly", "name": "Monthly"},
    }

    # The second cycle is current and used up: the third starts at once.
    now = at(2025, 3, 5)
    db.get(BillingCycle, second.id).used = 300
    db.commit()
    third = activate_cycle(db, PLAN, user.id, now)
    db.commit()
    rows = cycles_of(db, user.id)
    assert rows[1].ends_at == now
    assert (third.starts_at, third.ends_at) == (now, at(2025, 4, 5))
    summary = subscription_summary(db, user.id, now)
    assert summary["quota"] == {"bucket": 100}


def test_summary_active_expired_and_none(db, user_factory):
    user = user_factory()
    assert subscription_summary(db, user.id)["subscription"] == {
        "status": "none",
        "current_period_end": None,
        "plan": None,
    }
    cycle = activate_cycle(db, PLAN, user.id, at(2025, 1, 1))
    db.commit()
    end = cycle.ends_at
    before = subscription_summary(db, user.id, end - dt.timedelta(microseconds=1))
    assert before["subscription"]["status"] == "active"
    after = subscription_summary(db, user.id, end)
    assert after == {
        "subscription": {
            "status": "expired",
            "current_period_end": "2025-02-01T00:00:00+00:00",
            "plan": None,
        },
        "quota": {"bucket": 0},
        "packs": [],
    }
