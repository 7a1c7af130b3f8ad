"""Where the money is (DESIGN 4.7, the overview's Money row): revenue, subscriptions and their
movements, monthly recurring revenue, revenue per day. Read from payments, cycles and plans as
they are; every amount is a :class:`~decimal.Decimal` summed by the database, never a float.

Definitions (the README repeats them for operators):

- **Revenue** is the amount of every payment the processor reported ``finished`` (the whole
  amount arrived), counted on the day the order was placed (``created_at``, UTC), per currency
  and processor. A refunded payment (status ``refunded``) is not revenue, nor is one that is
  only partially paid, expired or failed. Packs are revenue like plans.
- **Today** is since 00:00 UTC; **7 days** and **30 days** are the last 7 times 24 and 30 times 24
  hours up to now, the first instant included.
- A **subscription** is a paid cycle: a billing cycle granted by a payment (not by an admin's
  grant or a free plan) whose payment was not refunded. It is **active** while
  ``starts_at <= now < ends_at``. Credit packs grant balances, not cycles, so they are never
  subscriptions.
- **New** (30 days): paid cycles granted in the last 30 days to a user with no earlier paid
  cycle. **Renewed** (30 days): paid cycles granted in the last 30 days to a user who had one
  before, refunded or not (an early renewal, a plan change or a return after a lapse).
- **Expiring in 7 days**: users whose latest-ending cycle is paid and ends after now and at
  most 7 days from now (nothing bought or granted after it). **Churned in 30 days**: users
  whose latest-ending cycle is paid and ended in the last 30 days (at most now): they have no
  access and bought nothing since.
- **Monthly recurring revenue**, per currency: each active subscription at its plan's current
  price (what renewing costs: renewals are new checkouts at today's price), divided by the
  plan's months (a yearly plan at 120.00 counts 10.00 a month).

The figures are read at most once per :data:`KEEP_SECONDS` per process (the page says when):
with a busy shop they add up tens of thousands of rows, which an admin reloading the overview
need not pay for each time. ``nproxy.admin.money_seconds`` changes it (0: every time).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from nproxy_core.billing.models import BillingCycle, Payment, PaymentState, Plan
from nproxy_core.db import utcnow

DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)
MONTH = dt.timedelta(days=30)
#: Days in the revenue chart, today (partial) last.
CHART_DAYS = 30
ZERO = Decimal(0)


def floor_day(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclasses.dataclass(frozen=True)
class Revenue:
    """Revenue of one currency (and one processor, or all of them) in the three windows."""

    currency: str
    processor: str | None
    today: Decimal
    week: Decimal
    month: Decimal


@dataclasses.dataclass(frozen=True)
class PlanSubscriptions:
    code: str
    name: str
    active: int


@dataclasses.dataclass(frozen=True)
class Money:
    #: Per (currency, processor), by currency then processor.
    revenue: list[Revenue]
    #: Per currency, every processor added up.
    totals: list[Revenue]
    subscriptions: list[PlanSubscriptions]
    new: int
    renewed: int
    expiring: int
    churned: int
    #: Monthly recurring revenue per currency.
    mrr: dict[str, Decimal]
    #: The chart's days (00:00 UTC), today last, and revenue per currency on each.
    days: list[dt.datetime]
    daily: dict[str, list[Decimal]]
    #: The moment the figures are for.
    as_of: dt.datetime | None = None

    @property
    def active_subscriptions(self) -> int:
        return sum(p.active for p in self.subscriptions)


def money(db: Session, now: dt.datetime) -> Money:
    revenue, totals, days, daily = _revenue(db, now)
    subscriptions, mrr = _subscriptions(db, now)
    new, renewed = _new_and_renewed(db, now)
    expiring, churned = _expiring_and_churned(db, now)
    return Money(
        revenue=revenue,
        totals=totals,
        subscriptions=subscriptions,
        new=new,
        renewed=renewed,
        expiring=expiring,
        churned=churned,
        mrr=mrr,
        days=days,
        daily=daily,
        as_of=now,
    )


#: How long the overview reuses the figures it read (seconds); ``nproxy.admin.money_seconds``.
KEEP_SECONDS = 60.0
SETTING = "nproxy.admin.money_seconds"
_KEPT = "nproxy.admin.money"
_LOCK = threading.Lock()


def kept_money(db: Session, registry: Any, now: dt.datetime | None = None) -> Money:
    """:func:`money`, read again only when the figures this app kept are older than
    ``nproxy.admin.money_seconds`` (default :data:`KEEP_SECONDS`; 0 reads every time)."""
    now = now or utcnow()
    keep = float(registry.settings.get(SETTING, KEEP_SECONDS) or 0)
    with _LOCK:
        kept: Money | None = getattr(registry, _KEPT.replace(".", "_"), None)
    if (
        kept is not None
        and kept.as_of is not None
        and 0 <= (now - kept.as_of).total_seconds() < keep
    ):
        return kept
    fresh = money(db, now)
    if keep > 0:
        with _LOCK:
            setattr(registry, _KEPT.replace(".", "_"), fresh)
    return fresh


# --- revenue ---------------------------------------------------------------------------------

#: Payments that are revenue (see the module's docstring).
REVENUE_STATUS = PaymentState.FINISHED


def _revenue(
    db: Session, now: dt.datetime
) -> tuple[list[Revenue], list[Revenue], list[dt.datetime], dict[str, list[Decimal]]]:
    """One pass over the last 30 days of finished payments (an index-only scan on PostgreSQL),
    grouped by currency, processor, chart day and whether within 7 days."""
    P = Payment
    today = floor_day(now)
    first_day = today - DAY * (CHART_DAYS - 1)
    days = [first_day + DAY * i for i in range(CHART_DAYS)]
    since_week, since_month = now - WEEK, now - MONTH
    window = (
        P.status == REVENUE_STATUS,
        P.created_at >= since_month,
        P.created_at <= now,
    )
    # (currency, processor, day index (may be -1: before the chart), within 7 days, sum)
    rows: list[tuple[str, str, int, bool, Decimal]] = []
    if db.get_bind().dialect.name == "postgresql":
        moment = sa.type_coerce(P.created_at, sa.DateTime(timezone=True))
        origin = sa.literal(first_day, type_=sa.DateTime(timezone=True))
        seconds = sa.func.date_part("epoch", moment - origin, type_=sa.Float)  # as stats does
        slot = sa.cast(sa.func.floor(seconds / 86400.0), sa.Integer)
        recent = moment >= sa.literal(since_week, type_=sa.DateTime(timezone=True))
        for currency, processor, index, in_week, total in db.execute(
            sa.select(P.currency, P.processor, slot, recent, sa.func.sum(P.amount))
            .where(*window)
            .group_by(P.currency, P.processor, slot, recent)
        ):
            rows.append((currency, processor, int(index), bool(in_week), Decimal(total)))
    else:
        # The embedded SQLite database is small: its rows are placed here.
        for currency, processor, amount, created in db.execute(
            sa.select(P.currency, P.processor, P.amount, P.created_at).where(*window)
        ):
            index = (created - first_day) // DAY if created >= first_day else -1
            rows.append((currency, processor, int(index), created >= since_week, Decimal(amount)))

    by_key: dict[tuple[str, str | None], list[Decimal]] = defaultdict(lambda: [ZERO] * 3)
    daily: dict[str, list[Decimal]] = {}
    last = CHART_DAYS - 1
    for currency, processor, index, in_week, total in rows:
        for key in ((currency, processor), (currency, None)):
            sums = by_key[key]
            sums[2] += total
            if in_week:
                sums[1] += total
            if index == last:
                sums[0] += total
        if 0 <= index <= last:
            daily.setdefault(currency, [ZERO] * CHART_DAYS)[index] += total

    def made(key: tuple[str, str | None]) -> Revenue:
        today_sum, week_sum, month_sum = by_key[key]
        return Revenue(key[0], key[1], today_sum, week_sum, month_sum)

    keys = sorted(by_key, key=lambda k: (k[0], k[1] or ""))
    revenue = [made(k) for k in keys if k[1] is not None]
    totals = [made(k) for k in keys if k[1] is None]
    return revenue, totals, days, dict(sorted(daily.items()))


# --- subscriptions ---------------------------------------------------------------------------


def paid_cycles(cycle: Any = BillingCycle) -> tuple[Any, ...]:
    """Where-clauses of a paid cycle: granted by a payment that was not refunded. Refunds are
    few: the database checks against their set (no join with every payment)."""
    refunded = sa.select(Payment.id).where(Payment.status == PaymentState.REFUNDED)
    return (cycle.payment_id.is_not(None), cycle.payment_id.not_in(refunded))


def _subscriptions(db: Session, now: dt.datetime) -> tuple[list[PlanSubscriptions], dict]:
    """Active subscriptions per plan (an index-only count), and the monthly recurring revenue
    per currency at each plan's price."""
    C = BillingCycle
    # A refund ends its cycle at once, so an active cycle's payment was not refunded.
    counts = db.execute(
        sa.select(C.plan_id, sa.func.count())
        .where(C.payment_id.is_not(None), C.ends_at > now, C.starts_at <= now)
        .group_by(C.plan_id)
    ).all()
    plans = {plan.id: plan for plan in db.scalars(sa.select(Plan))}
    monthly: dict[str, Fraction] = defaultdict(Fraction)
    places: dict[str, int] = defaultdict(lambda: 2)
    subscriptions = []
    for plan_id, count in counts:
        plan = plans.get(plan_id)
        if plan is None:  # pragma: no cover - the foreign key guarantees it
            continue
        subscriptions.append(PlanSubscriptions(plan.code, plan.name, int(count)))
        if not plan.free:
            price = Decimal(plan.price)
            monthly[plan.currency] += Fraction(price) * int(count) / max(plan.period_months, 1)
            places[plan.currency] = max(places[plan.currency], _decimals(price))
    subscriptions.sort(key=lambda p: (-p.active, p.code))
    mrr = {
        currency: _quantize(value, places[currency]) for currency, value in sorted(monthly.items())
    }
    return subscriptions, mrr


def _decimals(amount: Decimal) -> int:
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _quantize(value: Fraction, places: int) -> Decimal:
    """A fraction as a decimal of ``places`` places, half up (the currency's own precision)."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _new_and_renewed(db: Session, now: dt.datetime) -> tuple[int, int]:
    C = BillingCycle
    earlier = aliased(C)
    had_one = (
        sa.select(earlier.id)
        .where(earlier.user_id == C.user_id, earlier.id < C.id, earlier.payment_id.is_not(None))
        .exists()
    )
    # One pass over the window's cycles, counting both.
    total, renewed = db.execute(
        sa.select(sa.func.count(), sa.func.count().filter(had_one))
        .select_from(C)
        .where(*paid_cycles(), C.created_at >= now - MONTH, C.created_at <= now)
    ).one()
    return int(total) - int(renewed), int(renewed)


def _expiring_and_churned(db: Session, now: dt.datetime) -> tuple[int, int]:
    """:func:`expiring_users` and :func:`churned_users` counted in one pass."""
    C = BillingCycle
    users = sa.func.count(sa.distinct(C.user_id))
    expiring, churned = db.execute(
        _last_paid_cycles(now - MONTH)
        .with_only_columns(users.filter(C.ends_at > now), users.filter(C.ends_at <= now))
        .where(C.ends_at >= now - MONTH, C.ends_at <= now + WEEK)
    ).one()
    return int(expiring), int(churned)


def _last_paid_cycles(after: dt.datetime) -> sa.Select[Any]:
    """Paid cycles ending after ``after`` that end last of all their user's cycles (paid or
    granted)."""
    C = BillingCycle
    later = aliased(C)
    return sa.select(C.user_id).where(
        *paid_cycles(),
        ~sa.select(later.id)
        .where(later.user_id == C.user_id, later.ends_at > C.ends_at, later.ends_at > after)
        .exists(),
    )


def expiring_users(now: dt.datetime, within: dt.timedelta = WEEK) -> sa.Select[Any]:
    """The users (``user_id``) whose latest cycle is paid and ends in ``(now, now + within]``."""
    C = BillingCycle
    return _last_paid_cycles(now).where(C.ends_at > now, C.ends_at <= now + within)


def churned_users(now: dt.datetime, within: dt.timedelta = MONTH) -> sa.Select[Any]:
    """The users whose latest cycle is paid and ended in ``[now - within, now]``."""
    C = BillingCycle
    start = now - within
    return _last_paid_cycles(start).where(C.ends_at >= start, C.ends_at <= now)
