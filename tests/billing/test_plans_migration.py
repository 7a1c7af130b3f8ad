"""Migration 0014_plans on a database in use: every payment and cycle of 0013 is linked to the
plan ``monthly`` made from the settings, and what was in flight (holds, a waiting payment)
carries on as before."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import ADMIN_URL, TEST_DB
from nproxy_core import migrations
from nproxy_core.billing.models import BillingCycle, NotificationSource, Payment, PaymentState, Plan
from nproxy_core.billing.notifications import apply_event
from nproxy_core.billing.plan import Plan as PlanTerms
from nproxy_core.plugins import PaymentEvent, PaymentStatus
from nproxy_core.quota import services as quota
from nproxy_core.quota.models import HoldState, QuotaHold

_numbers = itertools.count(1)
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def _url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def old_settings(base_settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A database of the test's own at 0013_key_deletion, with the settings of its upgrade."""
    name = f"{TEST_DB}_plans_{next(_numbers)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    settings = {
        **base_settings,
        "sqlalchemy.url": _url(name),
        "nproxy.plan.name": "Monthly",
        "nproxy.plan.price": "12.50",
        "nproxy.plan.currency": "eur",
        "nproxy.plan.request_limit": "200",
        "nproxy.plan.period_months": "1",
    }
    migrations.upgrade(settings, "0013_key_deletion")
    yield settings
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fill(conn: sa.Connection) -> dict[str, int]:
    """Rows as the code of 0013 makes them: users, cycles used and reserved, payments in three
    states (one activated), and quota holds open on a cycle."""

    def insert(sql: str, **params: Any) -> int:
        return conn.execute(sa.text(sql + " RETURNING id"), params).scalar_one()

    ids = {}
    for n in (1, 2):
        ids[f"user{n}"] = insert(
            "INSERT INTO users (email, password_hash, role, is_blocked, session_version, "
            "created_at) VALUES (:email, 'x', 'user', false, 1, :now)",
            email=f"old{n}@example.com",
            now=NOW,
        )
    payment_sql = (
        "INSERT INTO payments (order_id, user_id, processor, amount, currency, status, "
        "needs_review, created_at, updated_at) VALUES (:order, :user, 'demo', 12.5, 'EUR', "
        ":status, :review, :now, :now)"
    )
    ids["finished"] = insert(
        payment_sql, order="o-finished", user=ids["user1"], status="finished", review=False,
        now=NOW,
    )  # fmt: skip
    ids["waiting"] = insert(
        payment_sql, order="o-waiting", user=ids["user2"], status="waiting", review=False,
        now=NOW,
    )  # fmt: skip
    ids["review"] = insert(
        payment_sql, order="o-review", user=ids["user2"], status="partially_paid", review=True,
        now=NOW,
    )  # fmt: skip
    cycle_sql = (
        "INSERT INTO billing_cycles (user_id, starts_at, ends_at, period_months, request_limit, "
        "used, reserved, payment_id, created_at) VALUES (:user, :start, :end, 1, 200, :used, "
        ":reserved, :payment, :start)"
    )
    ids["paid_cycle"] = insert(
        cycle_sql, user=ids["user1"], start=NOW - dt.timedelta(days=5),
        end=NOW + dt.timedelta(days=25), used=50, reserved=6, payment=ids["finished"],
    )  # fmt: skip
    ids["granted_cycle"] = insert(
        cycle_sql, user=ids["user2"], start=NOW - dt.timedelta(days=40),
        end=NOW - dt.timedelta(days=10), used=200, reserved=0, payment=None,
    )  # fmt: skip
    hold_sql = (
        "INSERT INTO quota_holds (cycle_id, amount, consumed, state, reference, created_at) "
        "VALUES (:cycle, :amount, 0, 'held', :ref, :now)"
    )
    ids["hold_a"] = insert(hold_sql, cycle=ids["paid_cycle"], amount=4, ref="gen-a", now=NOW)
    ids["hold_b"] = insert(hold_sql, cycle=ids["paid_cycle"], amount=2, ref="gen-b", now=NOW)
    return ids


def test_0014_links_every_payment_and_cycle_to_monthly_and_work_in_flight_carries_on(
    old_settings,
):
    engine = sa.create_engine(old_settings["sqlalchemy.url"])
    try:
        with engine.begin() as conn:
            ids = _fill(conn)
        migrations.upgrade(old_settings)
        assert migrations.inspect_schema(old_settings).problems() == []

        with Session(engine) as db:
            [monthly] = db.scalars(sa.select(Plan)).all()
            # Made from the settings the upgrade ran with.
            assert (monthly.code, monthly.name, monthly.currency) == ("monthly", "Monthly", "EUR")
            assert (monthly.price, monthly.units, monthly.period_months) == (
                Decimal("12.5"),
                200,
                1,
            )
            assert monthly.public and monthly.active and monthly.recurring_allowed
            assert not monthly.free
            payments = db.scalars(sa.select(Payment).order_by(Payment.id)).all()
            assert [(p.plan_id, p.plan_units, p.plan_period_months) for p in payments] == [
                (monthly.id, 200, 1)
            ] * 3
            cycles = db.scalars(sa.select(BillingCycle).order_by(BillingCycle.id)).all()
            assert [c.plan_id for c in cycles] == [monthly.id, monthly.id]
            assert [(c.request_limit, c.used, c.reserved) for c in cycles] == [
                (200, 50, 6),
                (200, 200, 0),
            ]

            # The holds taken before the upgrade still settle and release on their cycle:
            # 0016 made them one unit per image, wholly on the cycle.
            holds = db.scalars(sa.select(QuotaHold).order_by(QuotaHold.id)).all()
            assert [(h.unit_cost, h.cycle_units, h.amount) for h in holds] == [(1, 4, 4), (1, 2, 2)]
            quota.settle(db, ids["hold_a"], 3, now=NOW)
            quota.release(db, ids["hold_b"], now=NOW)
            db.commit()
            paid = db.get(BillingCycle, ids["paid_cycle"])
            db.refresh(paid)
            assert (paid.used, paid.reserved) == (53, 0)
            states = db.scalars(sa.select(QuotaHold.state).order_by(QuotaHold.id)).all()
            assert states == [HoldState.SETTLED, HoldState.RELEASED]

            # A payment that was waiting finishes after the upgrade: a cycle of monthly, with
            # the units and period recorded for it.
            terms = PlanTerms.from_settings(old_settings)
            outcome = apply_event(
                db,
                terms,
                "demo",
                PaymentEvent(
                    order_id="o-waiting",
                    status=PaymentStatus.FINISHED,
                    amount=Decimal("12.5"),
                    currency="EUR",
                ),
                source=NotificationSource.RECONCILIATION,
                now=NOW,
            )
            db.commit()
            assert outcome.result == "activated"
            waiting = db.get(Payment, ids["waiting"])
            assert waiting.status == PaymentState.FINISHED
            assert waiting.cycle is not None
            assert (waiting.cycle.plan_id, waiting.cycle.request_limit) == (monthly.id, 200)
            assert waiting.cycle.period_months == 1
    finally:
        engine.dispose()


def test_0014_downgrades_cleanly(old_settings):
    migrations.upgrade(old_settings)
    from alembic import command

    command.downgrade(migrations.alembic_config(old_settings), "0013_key_deletion")
    engine = sa.create_engine(old_settings["sqlalchemy.url"])
    try:
        tables = sa.inspect(engine).get_table_names()
        assert "plans" not in tables
        columns = {c["name"] for c in sa.inspect(engine).get_columns("billing_cycles")}
        assert "plan_id" not in columns
    finally:
        engine.dispose()
