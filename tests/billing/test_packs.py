"""Credit packs (DESIGN 4.12): the catalog and its checks, GET /api/v1/packs, checkout of a
pack, what a finished payment grants (once, as paid for), review and refunds."""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.request
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import audit_rows, make_payment
from apiclient import ApiClient
from conftest import registry_service
from nproxy_core.alerts import IAlertNotifier
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import packs as pack_service
from nproxy_core.billing.cycles import add_months
from nproxy_core.billing.interfaces import IPacks, IPlan
from nproxy_core.billing.models import (
    BalanceSource,
    CreditPack,
    PackBalance,
    Payment,
    PaymentState,
)
from nproxy_core.billing.notifications import apply_event
from nproxy_core.billing.review import resolve_payment
from nproxy_core.errors import Conflict, NotFound, ValidationError
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import PaymentEvent, PaymentStatus

ADMIN = Actor("tester", Surface.CLI)


def add(db: Any, code: str, **fields: Any) -> CreditPack:
    values = {"name": code.title(), "price": "5", "currency": "USD", "units": 100, **fields}
    pack = pack_service.add_pack(db, code, values, actor=ADMIN)
    db.commit()
    return pack


def count(db: Any, model: Any) -> int:
    return db.scalar(sa.select(sa.func.count()).select_from(model))


def balances(db: Any) -> list[PackBalance]:
    db.expire_all()
    return list(db.scalars(sa.select(PackBalance).order_by(PackBalance.id)))


def pay(app: Any, checkout_url: str, outcome: str = "paid") -> None:
    """The buyer picks ``outcome`` on the demo checkout page (a signed notification)."""
    page = app.get(checkout_url.removeprefix("http://localhost"))
    page.forms["demo-outcome"].submit("outcome", value=outcome)


def notify(app: Any, payment: Payment, amount: Decimal | None = None) -> Any:
    """The demo processor's signed "paid" notification for ``payment``, posted to its webhook."""
    processor = registry_service(app.app.registry, IPlugins).processor("demo")
    body, headers = processor.notification(
        order_id=payment.order_id,
        outcome="paid",
        amount=payment.amount if amount is None else amount,
        currency=payment.currency,
        invoice_id=payment.invoice_id,
    )
    return app.post("/billing/webhooks/demo", body, headers=headers)


# --- the catalog -----------------------------------------------------------------------------


def test_a_pack_is_added_and_edited_with_audit_rows(db):
    add(db, "small", name="Small", price="4.50", units=120, models=["m1"])
    pack_service.edit_pack(db, "small", {"units": 150, "public": False}, actor=ADMIN)
    pack_service.edit_pack(db, "small", {"units": 150}, actor=ADMIN)  # no change: no row
    db.commit()
    small = db.scalar(sa.select(CreditPack))
    assert (small.price, small.units, small.valid_months, small.models) == (
        Decimal("4.50"),
        150,
        12,
        ["m1"],
    )
    rows = [r for r in audit_rows(db) if r.target_type == "pack"]
    assert [(r.action, r.actor, r.surface) for r in rows] == [
        ("pack.add", "tester", "cli"),
        ("pack.edit", "tester", "cli"),
    ]
    assert rows[0].after["price"] == "4.50" and rows[0].after["valid_months"] == 12
    assert rows[1].before == {"units": 120, "public": True}
    assert rows[1].after == {"code": "small", "units": 150, "public": False}


@pytest.mark.parametrize(
    ("code", "fields", "says"),
    [
        ("Big Pack", {}, "code must be a slug"),
        ("big", {"price": "0"}, "a credit pack needs a price above 0"),
        ("big", {"price": "-3"}, "price must be 0 or more"),
        ("big", {"price": "lots"}, "price must be a number"),
        ("big", {"currency": "dollars!"}, "currency must be 2 to 10"),
        ("big", {"units": 0}, "units must be a whole number above 0"),
        ("big", {"valid_months": "a year"}, "valid_months must be a whole number"),
        ("big", {"price_stars": -1}, "price_stars must be a whole number above 0"),
        ("big", {"name": ""}, "name must be 1 to 100 characters"),
        ("big", {"period_months": 1}, "no pack field 'period_months'"),
        ("big", {"active": "yes"}, "active must be true or false"),
    ],
)
def test_a_bad_pack_is_refused_naming_the_problem(db, code, fields, says):
    values = {"name": "Big", "price": "10", "currency": "USD", "units": 10, **fields}
    with pytest.raises(ValidationError, match=says):
        pack_service.add_pack(db, code, values, actor=ADMIN)
    db.rollback()
    assert count(db, CreditPack) == 0


def test_a_pack_needs_its_fields_and_a_code_of_its_own(db):
    with pytest.raises(ValidationError, match="a new pack needs price, currency, units"):
        pack_service.add_pack(db, "big", {"name": "Big"}, actor=ADMIN)
    add(db, "big")
    with pytest.raises(Conflict, match="a pack 'big' exists already: use `nproxy packs edit big`"):
        add(db, "big")
    with pytest.raises(NotFound, match="no pack 'huge'"):
        pack_service.edit_pack(db, "huge", {"units": 5}, actor=ADMIN)
    with pytest.raises(ValidationError, match="a credit pack needs a price above 0"):
        pack_service.edit_pack(db, "big", {"price": "0"}, actor=ADMIN)


def test_packs_for_sale_are_public_and_active_cheapest_first(db, registry):
    add(db, "large", price="20", units=600)
    add(db, "small", price="5", units=100)
    add(db, "hidden", public=False)
    add(db, "old")
    pack_service.edit_pack(db, "old", {"active": False}, actor=ADMIN)
    db.commit()
    catalog = registry_service(registry, IPacks)
    assert [p.code for p in catalog.for_sale(db)] == ["small", "large"]
    assert catalog.get(db, " SMALL ").code == "small"


def test_a_stars_processor_sells_only_packs_with_a_stars_price(db, registry):
    class Stars:
        name = "stars"
        charges_stars = True

    add(db, "small")
    catalog = registry_service(registry, IPacks)
    with pytest.raises(ValidationError) as refused:
        catalog.to_buy(db, "small", Stars())
    assert (
        refused.value.message
        == "The pack 'small' has no price in Stars, so 'stars' cannot sell it."
    )
    assert refused.value.fields == {"pack": "unavailable"}
    pack_service.edit_pack(db, "small", {"price_stars": 250}, actor=ADMIN)
    assert catalog.to_buy(db, "small", Stars()).code == "small"


def test_get_packs_lists_what_each_pack_buys(api, db, registry):
    models = [
        caps.model
        for provider in registry_service(registry, IPlugins).providers.values()
        for caps in provider.capabilities()
    ]
    add(db, "small", name="Small", price="4.5", units=100, valid_months=6, models=[models[0]])
    add(db, "hidden", public=False)
    [small] = api.get("/api/v1/packs").json["packs"]
    assert small == {
        "code": "small",
        "name": "Small",
        "price": {"amount": "4.50", "currency": "USD"},
        "price_stars": None,
        "units": 100,
        "valid_months": 6,
        "models": [models[0]],
        "images_per_model": small["images_per_model"],
    }
    assert [e["model"] for e in small["images_per_model"]] == [models[0]]
    assert all(e["images"] > 0 for e in small["images_per_model"])


# --- checkout --------------------------------------------------------------------------------


def test_checkout_of_a_pack_records_what_it_buys(demo_api, db, registry):
    add(db, "small", name="Small", price="4.50", units=120, valid_months=6)
    demo_api.register("buyer@example.com")
    res = demo_api.post("/api/v1/billing/checkout", {"processor": "demo", "pack": "small"})
    assert res.status_int == 201, res.text
    payment = db.scalar(sa.select(Payment))
    assert (payment.amount, payment.currency, payment.plan_id) == (Decimal("4.50"), "USD", None)
    assert (payment.pack.code, payment.pack_units, payment.pack_valid_months) == ("small", 120, 6)
    assert res.json["payment_id"] == payment.order_id


def test_the_invoice_describes_the_pack(db):
    from nproxy_core.billing.checkout import describe

    assert describe(add(db, "small", name="Small", units=120)) == (
        "nproxy Small credit pack (120 units)"
    )


@pytest.mark.parametrize(
    ("body", "says", "fields"),
    [
        ({"pack": "huge"}, "There is no pack 'huge'.", {"pack": "unknown"}),
        ({"pack": "old"}, "The pack 'old' is no longer sold.", {"pack": "unavailable"}),
        ({"pack": 7}, "Name a pack.", {"pack": "invalid"}),
        ({"pack": "small", "plan": "monthly"}, "Name a plan or a pack, not both.", None),
        (
            {"pack": "small", "coupon": "FREE"},
            "Unknown field 'coupon': a checkout takes processor and plan or pack.",
            {"coupon": "unknown"},
        ),
    ],
)
def test_checkout_refuses_a_pack_that_cannot_be_bought(demo_api, db, body, says, fields):
    add(db, "small")
    add(db, "old")
    pack_service.edit_pack(db, "old", {"active": False}, actor=ADMIN)
    db.commit()
    demo_api.register("buyer@example.com")
    res = demo_api.post("/api/v1/billing/checkout", {"processor": "demo", **body}, status=400)
    assert res.json["error"]["code"] == "validation_error"
    assert res.json["error"]["message"] == says
    if fields is not None:
        assert res.json["error"]["fields"] == fields
    assert count(db, Payment) == 0


def test_the_pricing_form_checks_out_a_pack(demo_app, db):
    add(db, "small", price="4.50")
    api = ApiClient(demo_app)
    api.register("buyer@example.com")
    res = demo_app.post(
        "/billing/checkout", {"processor": "demo", "pack": "small", "csrf_token": api.csrf()}
    )
    assert res.status_int == 303
    payment = db.scalar(sa.select(Payment))
    assert payment.pack.code == "small" and res.location == payment.checkout_url


# --- activation ------------------------------------------------------------------------------


def test_a_paid_pack_grants_its_balance_once_as_paid_for(demo_app, demo_api, db):
    add(db, "small", name="Small", price="4.50", units=120, valid_months=6, models=["m1"])
    demo_api.register("buyer@example.com")
    res = demo_api.post("/api/v1/billing/checkout", {"processor": "demo", "pack": "small"})
    # The pack changes after checkout: the payment still grants what it paid for.
    pack_service.edit_pack(db, "small", {"price": "9", "units": 10, "valid_months": 1}, actor=ADMIN)
    db.commit()
    pay(demo_app, res.json["checkout_url"])
    payment = db.scalar(sa.select(Payment))
    # The same notification again (a replay): nothing more.
    assert notify(demo_app, payment).json["result"] == "unchanged"
    [balance] = balances(db)
    assert payment.status == PaymentState.FINISHED and not payment.needs_review
    assert (balance.units, balance.used, balance.source) == (120, 0, BalanceSource.PURCHASE)
    assert (balance.label, balance.models, balance.payment_id) == ("Small", ["m1"], payment.id)
    assert balance.starts_at <= payment.updated_at
    assert balance.expires_at == add_months(balance.starts_at, 6)
    # The buyer's return page and history say what was added.
    page = demo_app.get(f"/billing/payments/{payment.order_id}/success")
    assert "120 units of" in page.html.select_one("#pack-added").text
    history = demo_app.get("/billing")
    row = history.html.select_one(f'tr[data-order="{payment.order_id}"]')
    assert "Paid" in row.text and "Small credit pack: 120 units" in row.text


def test_a_pack_bought_on_the_31st_expires_on_the_months_last_day(db, user_factory):
    small = add(db, "small", units=50, valid_months=1)
    payment = make_payment(db, user_factory("buyer@example.com"), status="finished")
    payment.pack_id, payment.pack_units, payment.pack_valid_months = small.id, 50, 1
    db.flush()
    now = dt.datetime(2027, 1, 31, 12, 0, tzinfo=dt.UTC)
    balance = pack_service.grant_bought_pack(db, payment, now)
    assert balance.expires_at == dt.datetime(2027, 2, 28, 12, 0, tzinfo=dt.UTC)
    assert pack_service.grant_bought_pack(db, payment, now) is balance


def test_twenty_duplicate_notifications_at_once_grant_one_balance(make_app, live_server, db):
    app = make_app(nproxy__payments="demo", nproxy__public_url=live_server.url)
    live_server.start(app.app)
    add(db, "small", price="4.50", units=120)
    api = ApiClient(app)
    api.register("buyer@example.com")
    api.post("/api/v1/billing/checkout", {"processor": "demo", "pack": "small"})
    payment = db.scalar(sa.select(Payment))
    processor = registry_service(app.app.registry, IPlugins).processor("demo")
    body, headers = processor.notification(
        order_id=payment.order_id,
        outcome="paid",
        amount=payment.amount,
        currency=payment.currency,
        invoice_id=payment.invoice_id,
    )
    barrier = threading.Barrier(20)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def send() -> None:
        request = urllib.request.Request(
            f"{live_server.url}/billing/webhooks/demo", data=body, headers=headers, method="POST"
        )
        barrier.wait()
        with opener.open(request, timeout=60) as response:
            answer = (response.status, json.loads(response.read())["result"])
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert sorted(answers) == [(200, "activated")] + [(200, "unchanged")] * 19
    [balance] = balances(db)
    assert balance.units == 120


def test_a_wrong_amount_goes_to_review_and_an_admins_resolve_grants_once(
    demo_app, demo_api, db, registry
):
    add(db, "small", price="4.50", units=120)
    demo_api.register("buyer@example.com")
    demo_api.post("/api/v1/billing/checkout", {"processor": "demo", "pack": "small"})
    payment = db.scalar(sa.select(Payment))
    assert notify(demo_app, payment, Decimal("1.00")).json["result"] == "review"
    assert balances(db) == []
    db.expire_all()

    def activate(note: str) -> None:
        resolve_payment(
            db,
            registry_service(registry, IPlan),
            payment.id,
            decision="activate",
            note=note,
            actor=ADMIN,
            alerts=registry_service(registry, IAlertNotifier),
        )

    activate("paid the rest by bank transfer")
    db.commit()
    [balance] = balances(db)
    assert balance.units == 120 and balance.payment_id == payment.id
    [row] = audit_rows(db, "payment.resolve")
    assert (row.before["pack_balance_id"], row.after["pack_balance_id"]) == (None, balance.id)
    assert row.after["pack"] == "small" and row.after["cycle_id"] is None
    # Even reopened, a payment that granted its pack grants nothing more.
    db.execute(
        sa.update(Payment).where(Payment.id == payment.id).values(resolved_at=None, resolution=None)
    )
    db.commit()
    with pytest.raises(Conflict, match="already granted its credit pack"):
        activate("again")


def test_a_refund_takes_back_the_unused_units(demo_app, demo_api, db, registry):
    add(db, "small", price="4.50", units=120)
    demo_api.register("buyer@example.com")
    res = demo_api.post("/api/v1/billing/checkout", {"processor": "demo", "pack": "small"})
    pay(demo_app, res.json["checkout_url"])
    [balance] = balances(db)
    # Some units were spent and some are held for images in flight.
    balance.used, balance.reserved = 30, 4
    db.commit()
    payment = db.scalar(sa.select(Payment))
    refund = PaymentEvent(
        order_id=payment.order_id,
        status=PaymentStatus.REFUNDED,
        amount=payment.amount,
        currency=payment.currency,
        invoice_id=payment.invoice_id,
    )
    plan = registry_service(registry, IPlan)
    outcome = apply_event(db, plan, "demo", refund, source="webhook")
    db.commit()
    assert outcome.result == "refunded"
    [balance] = balances(db)
    assert balance.revoked_at is not None
    assert (balance.units, balance.used, balance.reserved, balance.units_left) == (120, 30, 4, 0)
    [row] = audit_rows(db, "billing.pack_revoked_by_refund")
    assert row.target_type == "pack_balance" and row.target_id == str(balance.id)
    assert row.before["revoked_at"] is None and row.after["payment_order_id"] == payment.order_id
    # A replayed refund changes nothing more.
    assert apply_event(db, plan, "demo", refund, source="webhook").result == "unchanged"
    db.commit()
    assert len(audit_rows(db, "billing.pack_revoked_by_refund")) == 1
    page = demo_app.get(f"/billing/payments/{payment.order_id}/success")
    assert "refunded" in page.text and page.html.select_one("#pack-added") is None
