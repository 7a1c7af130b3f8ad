"""Quota holds on PostgreSQL: the cost of reserving and settling one generation's units.

Creates its own database (``nproxy_bench_holds_PID``) at the migration head, users with a
cycle (and, for the pack run, a used-up cycle and two credit packs), and times, per
generation of 4 images, ``reserve`` + commit + ``settle`` + commit:

1. on a cycle that covers the hold (the common case: one conditional UPDATE);
2. across a used-up cycle and two pack balances (the locked path, DESIGN 4.12);
3. 8 threads at once on one user's cycle (row contention), generations per second.

It counts the SQL statements of one reserve on each path. Prints p50/p95 in milliseconds.
On code from before units (no ``unit_cost``), run 2 is skipped: compare run 1 and 3.

    .venv/bin/python benchmarks/holds.py [--holds 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import os
import statistics
import threading
import time

import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.accounts.services import create_user
from nproxy_core.billing.models import BillingCycle, Plan
from nproxy_core.db import create_engine, utcnow
from nproxy_core.migrations import upgrade
from nproxy_core.quota import services as quota

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = f"nproxy_bench_holds_{os.getpid()}"
UNITS = "unit_cost" in inspect.signature(quota.reserve).parameters


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(title: str, samples: list[float]) -> None:
    ms = [s * 1000 for s in samples]
    print(
        f"{title}: p50 {percentile(ms, 0.5):.2f} ms, p95 {percentile(ms, 0.95):.2f} ms, "
        f"mean {statistics.fmean(ms):.2f} ms ({len(ms)} generations)"
    )


def user_with_cycle(db: Session, email: str, units: int, used: int = 0) -> int:
    user = create_user(db, email, "benchmark-password")
    now = utcnow()
    plan_id = db.scalar(sa.select(Plan.id).where(Plan.code == "monthly"))
    db.add(
        BillingCycle(
            user_id=user.id,
            starts_at=now - dt.timedelta(days=1),
            ends_at=now + dt.timedelta(days=29),
            period_months=1,
            plan_id=plan_id,
            request_limit=units,
            used=used,
        )
    )
    db.commit()
    return user.id


def one_generation(db: Session, user_id: int, cost: int) -> float:
    started = time.perf_counter()
    if UNITS:
        hold = quota.reserve(db, user_id, 4, unit_cost=cost, reference="bench")
    else:
        hold = quota.reserve(db, user_id, 4, reference="bench")
    db.commit()
    quota.settle(db, hold.id, 3)
    db.commit()
    return time.perf_counter() - started


def count_statements(engine: sa.Engine, db: Session, user_id: int, cost: int) -> int:
    seen: list[str] = []

    def listen(conn, cursor, statement, *args) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        kwargs = {"unit_cost": cost} if UNITS else {}
        quota.reserve(db, user_id, 1, reference="count", **kwargs)
        db.flush()
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)
        db.rollback()
    return len([s for s in seen if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))])


def run(holds: int) -> None:
    settings = {"sqlalchemy.url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"}
    upgrade(settings)
    engine = create_engine(settings, pool_size=10)
    with Session(engine) as db:
        cycle_user = user_with_cycle(db, "cycle@bench.example", units=(holds + 100) * 4)
        print(f"statements per reserve on a cycle: {count_statements(engine, db, cycle_user, 1)}")
        for _ in range(50):  # warm-up
            one_generation(db, cycle_user, 1)
        report("cycle, 4 images", [one_generation(db, cycle_user, 1) for _ in range(holds)])

        if UNITS:
            from nproxy_core.billing.models import BalanceSource, PackBalance

            pack_user = user_with_cycle(db, "packs@bench.example", units=10, used=10)
            for n in range(2):
                db.add(
                    PackBalance(
                        user_id=pack_user,
                        source=BalanceSource.GRANT,
                        label=f"bench {n}",
                        units=holds * 12 + 1000,
                        starts_at=utcnow() - dt.timedelta(minutes=1),
                        expires_at=utcnow() + dt.timedelta(days=365),
                    )
                )
            db.commit()
            statements = count_statements(engine, db, pack_user, 3)
            print(f"statements per reserve on packs: {statements}")
            for _ in range(50):
                one_generation(db, pack_user, 3)
            report(
                "used-up cycle and packs, 4 images x 3 units",
                [one_generation(db, pack_user, 3) for _ in range(holds)],
            )

        shared = user_with_cycle(db, "shared@bench.example", units=(holds + 100) * 4)
    per_thread = max(1, holds // 8)

    def worker() -> None:
        with Session(engine) as session:
            for _ in range(per_thread):
                one_generation(session, shared, 1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    print(f"8 threads on one cycle: {8 * per_thread / elapsed:.0f} generations/s")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holds", type=int, default=1000)
    args = parser.parse_args()
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    try:
        run(args.holds)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
