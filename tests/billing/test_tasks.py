"""Billing's periodic jobs run as tasks: expiry warnings, once each."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from conftest import monthly_plan_id
from nproxy_core.billing.models import BillingCycle
from nproxy_core.billing.tasks import send_expiry_warnings
from nproxy_core.db import utcnow
from nproxy_core.tasks import run_now


def ending_in(db, user, left: dt.timedelta, **kw) -> BillingCycle:
    now = utcnow()
    cycle = BillingCycle(
        user_id=user.id,
        starts_at=now - dt.timedelta(days=25),
        ends_at=now + left,
        period_months=1,
        plan_id=monthly_plan_id(db),
        request_limit=300,
        **kw,
    )
    db.add(cycle)
    db.commit()
    return cycle


def test_three_day_then_one_day_warning_once_each(db, registry, outbox, user_factory):
    user = user_factory("soon@example.com")
    cycle = ending_in(db, user, dt.timedelta(days=2, hours=12))
    assert run_now(registry, send_expiry_warnings) == 1
    assert [m["to"] for m in outbox] == ["soon@example.com"]
    assert "ends in 3 days" in outbox[0]["subject"]
    assert "http://localhost/pricing" in outbox[0]["body"]
    assert run_now(registry, send_expiry_warnings) == 0
    assert len(outbox) == 1

    # Time passes: now it is inside the last day.
    db.execute(
        sa.update(BillingCycle)
        .where(BillingCycle.id == cycle.id)
        .values(ends_at=utcnow() + dt.timedelta(hours=20))
    )
    db.commit()
    assert run_now(registry, send_expiry_warnings) == 1
    assert "ends tomorrow" in outbox[1]["subject"]
    assert run_now(registry, send_expiry_warnings) == 0
    assert len(outbox) == 2
    db.expire_all()
    row = db.get(BillingCycle, cycle.id)
    assert row.warned_3d_at is not None and row.warned_1d_at is not None


def test_first_seen_inside_the_last_day_sends_only_the_one_day_warning(
    db, registry, outbox, user_factory
):
    user = user_factory()
    ending_in(db, user, dt.timedelta(hours=5))
    assert run_now(registry, send_expiry_warnings) == 1
    assert run_now(registry, send_expiry_warnings) == 0
    assert [m["subject"] for m in outbox] == ["Your nproxy plan ends tomorrow"]


def test_no_warning_far_from_the_end_after_it_or_when_renewed(db, registry, outbox, user_factory):
    far, ended, renewed = user_factory(), user_factory(), user_factory()
    ending_in(db, far, dt.timedelta(days=3, hours=1))
    ending_in(db, ended, -dt.timedelta(hours=1))
    current = ending_in(db, renewed, dt.timedelta(days=2))
    db.add(
        BillingCycle(
            user_id=renewed.id,
            starts_at=current.ends_at,
            ends_at=current.ends_at + dt.timedelta(days=30),
            period_months=1,
            plan_id=monthly_plan_id(db),
            request_limit=300,
        )
    )
    db.commit()
    assert run_now(registry, send_expiry_warnings) == 0
    assert outbox == []
