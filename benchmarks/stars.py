"""Telegram Stars on PostgreSQL: how fast the bot can answer ``pre_checkout_query`` (Telegram
allows 10 s) and apply ``successful_payment``, with many payments in the table.

Creates its own database (``nproxy_bench_stars_PID``) at the migration head, fills it with
``--payments`` payments (set-based SQL) of 1,000 users, then times:

1. ``check_pre_checkout`` of a payable order (one read by the unique order id), ``--runs``
   times on random orders;
2. ``apply_successful_payment`` + commit of as many fresh orders (the charge recorded, the plan
   activated, the referral hook asked);
3. the same update replayed (found by its charge: nothing changes).

Prints p50/p95 in milliseconds. Drops the database at the end.

    .venv/bin/python benchmarks/stars.py [--payments 200000] [--runs 500]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from decimal import Decimal
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.billing import stars
from nproxy_core.billing.plan import Plan as Terms
from nproxy_core.db import create_engine, import_models
from nproxy_core.migrations import upgrade

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = f"nproxy_bench_stars_{os.getpid()}"
DB_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"


class _Processor:
    """The stars plugin's reading of an update, without its HTTP client."""

    name = "stars"

    @staticmethod
    def payment_event(update: Any) -> Any:
        from nproxy_pay_stars import event_from_update

        return event_from_update(update)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(title: str, samples: list[float]) -> None:
    ms = [s * 1000 for s in samples]
    print(
        f"{title}: p50 {percentile(ms, 0.5):.2f} ms, p95 {percentile(ms, 0.95):.2f} ms, "
        f"mean {statistics.fmean(ms):.2f} ms ({len(ms)} runs)"
    )


def fill(engine: sa.Engine, payments: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (email, password_hash, role, is_blocked, session_version, "
                "created_at) SELECT 'bench' || g || '@example.com', 'x', 'user', false, 1, "
                "now() FROM generate_series(1, 1000) g"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO payments (order_id, user_id, processor, amount, currency, status, "
                "plan_id, plan_units, plan_period_months, needs_review, created_at, updated_at) "
                "SELECT 'order-' || g, 1 + g % 1000, 'stars', 100, 'XTR', 'waiting', "
                "(SELECT id FROM plans WHERE code = 'monthly'), 300, 1, false, now(), now() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": payments},
        )
        conn.execute(sa.text("ANALYZE"))


def update(order_id: str, charge: str) -> dict[str, Any]:
    return {
        "from": {"id": 42, "is_bot": False, "first_name": "Bench"},
        "successful_payment": {
            "currency": "XTR",
            "total_amount": 100,
            "invoice_payload": order_id,
            "telegram_payment_charge_id": charge,
        },
    }


def run(payments: int, runs: int) -> None:
    upgrade({"sqlalchemy.url": DB_URL})
    import_models()
    engine = create_engine({"sqlalchemy.url": DB_URL})
    started = time.perf_counter()
    fill(engine, payments)
    print(f"filled {payments} payments in {time.perf_counter() - started:.1f} s")
    terms = Terms("Monthly", Decimal("9.99"), "USD", 300, 1, code="monthly")
    processor = _Processor()
    orders = random.sample(range(1, payments + 1), 2 * runs)

    checks = []
    with Session(engine) as db:
        for n in orders[:runs]:
            query = {"id": "q", "currency": "XTR", "total_amount": 100}
            query["invoice_payload"] = f"order-{n}"
            t = time.perf_counter()
            answer = stars.check_pre_checkout(db, query)
            checks.append(time.perf_counter() - t)
            assert answer.ok, answer
            db.rollback()
    report("pre_checkout_query check", checks)

    applied, replayed = [], []
    with Session(engine) as db:
        for n in orders[runs:]:
            message = update(f"order-{n}", f"charge-{n}")
            t = time.perf_counter()
            outcome = stars.apply_successful_payment(db, terms, processor, message)
            db.commit()
            applied.append(time.perf_counter() - t)
            assert outcome.result == "activated", outcome
            t = time.perf_counter()
            again = stars.apply_successful_payment(db, terms, processor, message)
            db.commit()
            replayed.append(time.perf_counter() - t)
            assert again.result == "unchanged", again
    report("successful_payment applied + commit", applied)
    report("successful_payment replayed + commit", replayed)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    try:
        run(args.payments, args.runs)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
