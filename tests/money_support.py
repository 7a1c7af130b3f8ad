"""Payments, plans, packs and cycles built row by row for the money tests: exact amounts,
currencies, processors and times, as the billing code would have left them."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.billing.models import BillingCycle, CreditPack, Payment, Plan

_orders = itertools.count(1)


def plan(db: Session, code: str, **fields: Any) -> Plan:
    found = db.scalar(sa.select(Plan).where(Plan.code == code))
    if found is not None:
        return found
    row = Plan(
        code=code,
        name=fields.pop("name", code.title()),
        price=Decimal(fields.pop("price", "9.99")),
        currency=fields.pop("currency", "USD"),
        period_months=fields.pop("period_months", 1),
        units=fields.pop("units", 300),
        **fields,
    )
    db.add(row)
    db.commit()
    return row


def pack(db: Session, code: str = "pack-100") -> CreditPack:
    found = db.scalar(sa.select(CreditPack).where(CreditPack.code == code))
    if found is not None:
        return found
    row = CreditPack(code=code, name="100 units", price=Decimal("4.99"), currency="USD", units=100)
    db.add(row)
    db.commit()
    return row


def payment(
    db: Session,
    user: Any,
    amount: str,
    *,
    at: dt.datetime,
    currency: str = "USD",
    processor: str = "nowpayments",
    status: str = "finished",
    plan_row: Plan | None = None,
    pack_row: CreditPack | None = None,
    **fields: Any,
) -> Payment:
    n = next(_orders)
    row = Payment(
        order_id=fields.pop("order_id", f"order-{n:06}"),
        user_id=user.id,
        processor=processor,
        amount=Decimal(amount),
        currency=currency,
        status=status,
        invoice_id=fields.pop("invoice_id", f"inv-{n}"),
        processor_payment_id=fields.pop("processor_payment_id", f"pay-{n}"),
        plan_id=plan_row.id if plan_row is not None else None,
        plan_units=plan_row.units if plan_row is not None else None,
        plan_period_months=plan_row.period_months if plan_row is not None else None,
        pack_id=pack_row.id if pack_row is not None else None,
        pack_units=pack_row.units if pack_row is not None else None,
        pack_valid_months=12 if pack_row is not None else None,
        created_at=at,
        updated_at=at,
        **fields,
    )
    db.add(row)
    db.commit()
    return row


def cycle(
    db: Session,
    user: Any,
    plan_row: Plan,
    *,
    starts: dt.datetime,
    ends: dt.datetime,
    created: dt.datetime | None = None,
    paid: Payment | None = None,
    used: int = 0,
) -> BillingCycle:
    row = BillingCycle(
        user_id=user.id,
        plan_id=plan_row.id,
        starts_at=starts,
        ends_at=ends,
        period_months=plan_row.period_months,
        request_limit=plan_row.units,
        used=used,
        payment_id=paid.id if paid is not None else None,
        created_at=created or starts,
    )
    db.add(row)
    db.commit()
    return row


def paid_cycle(
    db: Session,
    user: Any,
    plan_row: Plan,
    *,
    starts: dt.datetime,
    ends: dt.datetime,
    status: str = "finished",
    amount: str | None = None,
    used: int = 0,
) -> BillingCycle:
    """A cycle as a finished payment of ``plan_row`` grants it, both made at ``starts``."""
    bought = payment(
        db,
        user,
        amount or str(plan_row.price),
        at=starts,
        currency=plan_row.currency,
        status=status,
        plan_row=plan_row,
    )
    return cycle(db, user, plan_row, starts=starts, ends=ends, paid=bought, used=used)
