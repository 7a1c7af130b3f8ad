"""``/admin/payments.csv?from=&to=`` for accounting: one row per payment ordered in the period,
amounts as the exact decimals paid, the processor's references, UTC ISO 8601 times; streamed;
a bad date is a 400 naming its parameter; admins only; every export audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import audit_rows
from money_support import pack, payment, plan
from nproxy_core.admin.views import exports
from nproxy_core.billing.models import Payment, PaymentNotification
from nproxy_core.db import IDatabase
from nproxy_core.wiring import find_service

JAN = dt.datetime(2026, 1, 31, 23, 59, 59, tzinfo=dt.UTC)


def rows(res: Any) -> list[dict[str, str]]:
    assert res.status_int == 200, res.text[:500]
    assert res.content_type == "text/csv"
    return list(csv.DictReader(io.StringIO(res.text)))


@pytest.fixture
def ledger(db: Any, user_factory: Any) -> dict[str, Any]:
    buyer = user_factory("buyer@example.com")
    monthly = plan(db, "monthly")
    paid = payment(
        db,
        buyer,
        "9.99",
        at=JAN,
        plan_row=monthly,
        invoice_id="5077125051",
        processor_payment_id="=HYPERLINK(1)",
        order_id="ord-jan",
    )
    db.add(
        PaymentNotification(
            payment_id=paid.id,
            processor="nowpayments",
            source="webhook",
            status="finished",
            raw={},
            result="activated",
            received_at=JAN + dt.timedelta(minutes=7, microseconds=5),
        )
    )
    db.commit()
    crypto = payment(
        db,
        buyer,
        "0.00012345",
        at=JAN + dt.timedelta(seconds=1),
        currency="BTC",
        pack_row=pack(db),
        status="waiting",
        order_id="ord-feb",
    )
    refunded = payment(
        db,
        buyer,
        "120.00",
        at=JAN - dt.timedelta(days=31),
        currency="EUR",
        processor="stripe",
        status="refunded",
        order_id="ord-dec",
    )
    return {"paid": paid, "crypto": crypto, "refunded": refunded, "buyer": buyer}


def test_one_row_per_payment_with_exact_amounts_references_and_utc_times(admin, ledger):
    found = rows(admin.get("/admin/payments.csv?from=2026-01-31&to=2026-02-01"))
    assert list(found[0]) == list(exports.COLUMNS)
    assert [r["order_id"] for r in found] == ["ord-jan", "ord-feb"]
    jan, feb = found
    assert jan == {
        "payment_id": str(ledger["paid"].id),
        "order_id": "ord-jan",
        "created_at": "2026-01-31T23:59:59Z",
        "finished_at": "2026-02-01T00:06:59Z",
        "status": "finished",
        "amount": "9.99",
        "currency": "USD",
        "processor": "nowpayments",
        "invoice_id": "5077125051",
        "processor_payment_id": "'=HYPERLINK(1)",  # never a formula in a spreadsheet
        "user_id": str(ledger["buyer"].id),
        "user_email": "buyer@example.com",
        "item": "plan",
        "item_code": "monthly",
        "needs_review": "no",
        "resolution": "",
    }
    assert (feb["amount"], feb["currency"], feb["item"], feb["item_code"]) == (
        "0.00012345",
        "BTC",
        "pack",
        "pack-100",
    )
    assert feb["finished_at"] == "" and feb["status"] == "waiting"
    assert Decimal(feb["amount"]) == Decimal("0.00012345")


def test_the_period_is_from_inclusive_to_a_whole_day(admin, ledger):
    def orders(query: str) -> list[str]:
        return [r["order_id"] for r in rows(admin.get(f"/admin/payments.csv{query}"))]

    assert orders("?from=2026-01-31&to=2026-01-31") == ["ord-jan"]  # to: the whole day
    assert orders("?from=2026-02-01") == ["ord-feb"]
    assert orders("?to=2026-01-31T23:59:59") == ["ord-dec"]  # a time: up to, not including
    assert orders("") == ["ord-dec", "ord-jan", "ord-feb"]  # every payment, oldest first
    assert orders("?from=2026-01-31T23:59:59%2B00:00&to=2026-02-01T00:00") == ["ord-jan"]
    assert orders("?from=2026-01-31T23:59:59&to=2026-02-01T00:00:01") == ["ord-jan", "ord-feb"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?from=yesterday", "from"),
        ("?from=2026-13-01", "from"),
        ("?to=31/01/2026", "to"),
        ("?from=2026-02-01&to=2026-01-01", "to"),
    ],
)
def test_a_bad_date_is_a_400_naming_the_parameter_and_exports_nothing(
    admin, db, ledger, query, named
):
    res = admin.get(f"/admin/payments.csv{query}", headers={"Accept": "application/json"})
    assert res.status_int == 400
    assert res.json["error"]["message"].startswith(f"{named} must")
    assert audit_rows(db, "payments.export") == []


def test_every_export_is_audited_with_its_period(admin, db, ledger, admin_user):
    admin.get("/admin/payments.csv?from=2026-01-01&to=2026-01-31")
    (entry,) = audit_rows(db, "payments.export")
    assert entry.actor == admin_user.email and str(entry.surface) == "web"
    assert entry.after["from"].startswith("2026-01-01T00:00:00")
    assert entry.after["to"].startswith("2026-02-01T00:00:00")


def test_only_admins_export(browse, user_factory, ledger):
    user_factory("plain@example.com")
    assert browse().login("plain@example.com").get("/admin/payments.csv").status_int == 404
    anonymous = browse().get("/admin/payments.csv")
    assert anonymous.status_int in (302, 303) and "/login" in anonymous.location


def test_rows_are_streamed_in_chunks_from_the_database(admin, app, db, user_factory):
    buyer = user_factory("many@example.com")
    start = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    many = exports.BATCH * 2 + 17
    db.execute(
        sa.insert(Payment),
        [
            {
                "order_id": f"bulk-{i}",
                "user_id": buyer.id,
                "processor": "demo",
                "amount": Decimal("1.10"),
                "currency": "USD",
                "status": "finished",
                "created_at": start + dt.timedelta(seconds=i),
                "updated_at": start,
            }
            for i in range(many)
        ],
    )
    db.commit()
    engine = find_service(app.app.registry, IDatabase).engine
    chunks = list(exports.stream(engine, exports._query(start, start + dt.timedelta(days=1))))
    assert len(chunks) >= 3  # written as read, not built whole
    found = rows(admin.get("/admin/payments.csv?from=2026-05-01&to=2026-05-01"))
    assert len(found) == many
    assert {r["amount"] for r in found} == {"1.10"}
