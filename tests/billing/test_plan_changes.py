"""Changing plan (DESIGN 4.12): a higher-priced plan starts at once, ends the running cycle and
keeps its unused units as a pack balance until the running cycle's end; renewals queued after
it follow the new cycle; any other plan is placed like a renewal (DESIGN 4.2)."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from admin_support import audit_rows, make_payment
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import plans as plan_service
from nproxy_core.billing.activation import activate_cycle
from nproxy_core.billing.models import (
    BalanceSource,
    BillingCycle,
    PackBalance,
    Plan,
)

ADMIN = Actor("tester", Surface.CLI)
NOW = dt.datetime(2027, 3, 10, 12, 0, tzinfo=dt.UTC)


def at(month: int, day: int, year: int = 2027) -> dt.datetime:
    return dt.datetime(year, month, day, 12, 0, tzinfo=dt.UTC)


def plan(db: Any, code: str, **fields: Any) -> Plan:
    if db.scalar(sa.select(Plan).where(Plan.code == code)) is None:
        values = {"name": code.title(), "currency": "USD", "units": 1000, "period_months": 1}
        plan_service.add_plan(db, code, {**values, **fields}, actor=ADMIN)
        db.commit()
    return db.scalar(sa.select(Plan).where(Plan.code == code))


def cycle(
    db: Any, user: Any, row: Plan, starts: dt.datetime, ends: dt.datetime, **counts: int
) -> BillingCycle:
    made = BillingCycle(
        user_id=user.id,
        starts_at=starts,
        ends_at=ends,
        period_months=1,
        plan_id=row.id,
        request_limit=row.units,
        **counts,
    )
    db.add(made)
    db.commit()
    return made


def buy(db: Any, user: Any, row: Plan, now: dt.datetime = NOW) -> BillingCycle:
    """A finished payment for ``row`` at its price, activated at ``now``."""
    payment = make_payment(db, user, status="finished")
    payment.amount, payment.currency = row.price, row.currency
    payment.plan_id, payment.plan_units = row.id, row.units
    payment.plan_period_months = row.period_months
    db.flush()
    made = activate_cycle(db, row, user.id, now, payment=payment)
    db.commit()
    return made


def dates(db: Any, user: Any) -> list[tuple[str, dt.datetime, dt.datetime]]:
    db.expire_all()
    rows = db.scalars(
        sa.select(BillingCycle)
        .where(BillingCycle.user_id == user.id)
        .order_by(BillingCycle.starts_at, BillingCycle.id)
    )
    return [(c.plan.code, c.starts_at, c.ends_at) for c in rows]


def balances(db: Any) -> list[PackBalance]:
    db.expire_all()
    return list(db.scalars(sa.select(PackBalance).order_by(PackBalance.id)))


def test_an_upgrade_starts_now_and_keeps_the_unused_units_as_a_pack(db, user_factory):
    user = user_factory()
    monthly = plan(db, "monthly")
    plan_service.edit_plan(db, "monthly", {"models": ["m1", "m2"]}, actor=ADMIN)
    pro = plan(db, "pro", name="Pro", price="29.90", units=1000, period_months=3)
    running = cycle(db, user, monthly, at(3, 1), at(4, 1), used=100, reserved=20)
    # A renewal bought early, queued after the running cycle.
    cycle(db, user, monthly, at(4, 1), at(5, 1))
    new = buy(db, user, pro)
    assert dates(db, user) == [
        ("monthly", at(3, 1), NOW),
        ("pro", NOW, at(6, 10)),
        ("monthly", at(6, 10), at(7, 10)),
    ]
    assert new.request_limit == 1000
    [left] = balances(db)
    assert (left.source, left.label, left.user_id) == (
        BalanceSource.UPGRADE,
        "Monthly: unused units",
        user.id,
    )
    # 300 units, 100 used, 20 held for images in flight (they settle on the old cycle).
    assert (left.units, left.used, left.reserved) == (180, 0, 0)
    assert (left.starts_at, left.expires_at, left.models) == (NOW, at(4, 1), ["m1", "m2"])
    assert left.payment_id is None and left.pack_id is None
    db.refresh(running)
    assert (running.used, running.reserved) == (100, 20)
    [row] = audit_rows(db, "billing.plan_upgraded")
    assert (row.actor, row.target_type, row.target_id) == ("system", "user", str(user.id))
    assert row.before == {
        "cycle_id": running.id,
        "plan": "monthly",
        "ends_at": "2027-04-01T12:00:00+00:00",
        "unused_units": 180,
    }
    assert row.after["plan"] == "pro" and row.after["balance"]["units"] == 180
    assert row.after["old_cycle_ends_at"] == "2027-03-10T12:00:00+00:00"
    assert [m["starts_at"] for m in row.after["moved"]] == ["2027-06-10T12:00:00+00:00"]


def test_an_upgrade_from_a_used_up_cycle_leaves_no_pack(db, user_factory):
    user = user_factory()
    monthly = plan(db, "monthly")
    pro = plan(db, "pro", price="29.90")
    cycle(db, user, monthly, at(3, 1), at(4, 1), used=300)
    buy(db, user, pro)
    assert dates(db, user) == [("monthly", at(3, 1), NOW), ("pro", NOW, at(4, 10))]
    assert balances(db) == []
    [row] = audit_rows(db, "billing.plan_upgraded")
    assert row.before["unused_units"] == 0 and row.after["balance"] is None


def test_a_cheaper_plan_starts_when_the_running_one_ends(db, user_factory):
    user = user_factory()
    pro = plan(db, "pro", price="29.90", units=1000)
    lite = plan(db, "lite", price="4.99", units=100)
    cycle(db, user, pro, at(3, 1), at(4, 1), used=10)
    buy(db, user, lite)
    assert dates(db, user) == [("pro", at(3, 1), at(4, 1)), ("lite", at(4, 1), at(5, 1))]
    assert balances(db) == [] and audit_rows(db, "billing.plan_upgraded") == []


def test_the_same_price_or_another_currency_is_no_upgrade(db, user_factory):
    user = user_factory()
    monthly = plan(db, "monthly")
    twin = plan(db, "twin", price=str(monthly.price))
    euro = plan(db, "euro", price="500", currency="EUR")
    cycle(db, user, monthly, at(3, 1), at(4, 1))
    buy(db, user, twin)
    buy(db, user, euro)
    assert dates(db, user) == [
        ("monthly", at(3, 1), at(4, 1)),
        ("twin", at(4, 1), at(5, 1)),
        ("euro", at(5, 1), at(6, 1)),
    ]
    assert balances(db) == [] and audit_rows(db, "billing.plan_upgraded") == []


def test_a_cheaper_plan_after_a_used_up_cycle_still_starts_at_once(db, user_factory):
    user = user_factory()
    pro = plan(db, "pro", price="29.90")
    lite = plan(db, "lite", price="4.99", units=100)
    cycle(db, user, pro, at(3, 1), at(4, 1), used=1000)
    buy(db, user, lite)
    assert dates(db, user) == [("pro", at(3, 1), NOW), ("lite", NOW, at(4, 10))]
    assert balances(db) == []


def test_an_admins_free_cycle_of_a_dearer_plan_is_placed_like_a_renewal(db, user_factory):
    user = user_factory()
    monthly = plan(db, "monthly")
    pro = plan(db, "pro", price="29.90")
    cycle(db, user, monthly, at(3, 1), at(4, 1))
    activate_cycle(db, pro, user.id, NOW)
    db.commit()
    assert dates(db, user) == [("monthly", at(3, 1), at(4, 1)), ("pro", at(4, 1), at(5, 1))]


def test_buying_a_dearer_plan_through_the_demo_checkout_upgrades(
    demo_app, demo_api, db, user_factory
):
    pro = plan(db, "pro", price="29.90", units=1000)
    demo_api.register("buyer@example.com")
    from nproxy_core.accounts.models import User

    user = db.scalar(sa.select(User).where(User.email == "buyer@example.com"))
    now = dt.datetime.now(dt.UTC)
    monthly = plan(db, "monthly")
    cycle(db, user, monthly, now - dt.timedelta(days=3), now + dt.timedelta(days=27), used=40)
    res = demo_api.post("/api/v1/billing/checkout", {"processor": "demo", "plan": "pro"})
    page = demo_app.get(res.json["checkout_url"].removeprefix("http://localhost"))
    page.forms["demo-outcome"].submit("outcome", value="paid")
    [(_, _, old_end), (code, new_start, _)] = dates(db, user)
    assert code == "pro" and old_end == new_start and new_start >= now
    [left] = balances(db)
    assert left.units == monthly.units - 40 and left.expires_at == now + dt.timedelta(days=27)
    # The return page says so, exactly: the units are the buyer's own.
    order_id = res.json["payment_id"]
    done = demo_app.get(f"/billing/payments/{order_id}/success").html
    said = " ".join(done.select_one("#upgrade-leftover").text.split())
    assert said.startswith(f"Your new plan started at once. The {monthly.units - 40} units left")
    assert '("Monthly: unused units")' in said
    assert pro.price == Decimal("29.90")


def test_units_held_while_the_upgrade_is_applied_are_not_counted_as_unused(
    db, user_factory, base_settings
):
    """A hold on the running cycle that commits while the upgrade waits for the cycle's row
    is left out of the leftover pack: the same units are never spendable twice."""
    from sqlalchemy.orm import Session

    from nproxy_core.db import create_engine
    from nproxy_core.quota import services as quota

    user = user_factory()
    monthly = plan(db, "monthly")
    pro = plan(db, "pro", price="29.90")
    cycle(db, user, monthly, at(3, 1), at(4, 1), used=100)
    user_id, pro_id = user.id, pro.id
    engine = create_engine(base_settings, pool_size=2, max_overflow=0)
    holder = Session(bind=engine)
    quota.reserve(holder, user_id, 10, now=NOW)  # held, not committed yet
    outcome: list[Any] = []

    def upgrade() -> None:
        with Session(bind=engine) as session:
            try:
                buy(session, session.get(type(user), user_id), session.get(Plan, pro_id))
                outcome.append("done")
            except Exception as exc:
                outcome.append(exc)

    thread = threading.Thread(target=upgrade)
    thread.start()
    thread.join(timeout=1)
    assert thread.is_alive() and outcome == []  # waiting for the cycle held by the hold
    holder.commit()
    holder.close()
    thread.join(timeout=30)
    engine.dispose()
    assert outcome == ["done"]
    [left] = balances(db)
    assert left.units == 300 - 100 - 10
