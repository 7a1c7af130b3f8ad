"""Refunds by an admin (DESIGN 4.14): the web admin's ``/admin/payments/{id}/refund`` and the
admin bot's ``/payments refund``, one service: Telegram Stars are sent back with
``refundStarPayment`` (the fake Bot API) and the cycle ends or the pack's unused units go;
other processors, unpaid payments, a second refund and Telegram's refusal change nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import AdminBrowser, audit_rows
from nproxy_core.adminbot import commands
from nproxy_core.billing import stars
from nproxy_core.billing.models import BillingCycle, PackBalance, Payment, PaymentState
from nproxy_core.db import utcnow
from pay_stars.test_flow import successful_payment

PAYER = 4242


@pytest.fixture
def admin(stars_app, user_factory) -> AdminBrowser:
    user_factory("boss@example.com", admin=True)
    return AdminBrowser(stars_app).login("boss@example.com")


@pytest.fixture
def paid(db, stars_plan, processor, plan_terms, user_factory, fake) -> Payment:
    """A plan bought for 100 Stars by Telegram user PAYER, activated."""
    buyer = user_factory("buyer@example.com")
    payment, _ = stars.start_stars_checkout(db, stars_plan, processor, buyer.id, link=False)
    db.commit()
    stars.apply_successful_payment(
        db, plan_terms, processor, successful_payment(payment, charge="ch-77", payer=PAYER)
    )
    db.commit()
    fake.charges["ch-77"] = PAYER
    return payment


def fresh(db, payment: Payment) -> Payment:
    db.expire_all()
    return db.get(Payment, payment.id)


def cycle_of(db, payment: Payment) -> BillingCycle:
    db.expire_all()
    return db.scalar(sa.select(BillingCycle).where(BillingCycle.payment_id == payment.id))


def test_web_refund_sends_the_stars_back_and_ends_the_cycle(admin, db, paid, fake):
    before = cycle_of(db, paid).ends_at
    assert before > utcnow() + dt.timedelta(days=20)
    page = admin.get(f"/admin/payments/{paid.id}")
    assert page.html.select_one("#refund-form") is not None
    _, ok, errors = admin.act(f"/admin/payments/{paid.id}/refund", {"note": "asked by mail"})
    assert errors == [] and ok and "refunded" in ok[0]
    assert fake.refunds == [{"user_id": PAYER, "telegram_payment_charge_id": "ch-77"}]
    assert fresh(db, paid).status == PaymentState.REFUNDED
    assert cycle_of(db, paid).ends_at <= utcnow()
    (row,) = audit_rows(db, "payment.refund")
    assert row.surface == "web" and row.actor == "boss@example.com"
    assert row.after["note"] == "asked by mail" and row.after["status"] == "refunded"
    # Again: refused, Telegram not asked twice.
    _, ok, errors = admin.act(f"/admin/payments/{paid.id}/refund", {"note": "again"})
    assert errors == [f"payment {paid.id} was refunded already"] and ok == []
    assert len(fake.refunds) == 1


def test_web_refund_needs_a_note_and_the_csrf_token(admin, db, paid, fake):
    _, ok, errors = admin.act(f"/admin/payments/{paid.id}/refund", {"note": " "})
    assert ok == [] and errors == ["a note is required: say why"]
    forged = admin.post(f"/admin/payments/{paid.id}/refund", {"note": "x"}, csrf=False)
    assert forged.status_int in (400, 403)
    assert fake.refunds == [] and fresh(db, paid).status == PaymentState.FINISHED


def test_telegram_refusing_the_refund_changes_nothing(admin, db, paid, fake):
    fake.charges.clear()  # Telegram knows no such charge
    ends = cycle_of(db, paid).ends_at
    _, ok, errors = admin.act(f"/admin/payments/{paid.id}/refund", {"note": "try"})
    assert ok == [] and "CHARGE_NOT_FOUND" in errors[0]
    assert fresh(db, paid).status == PaymentState.FINISHED
    assert cycle_of(db, paid).ends_at == ends
    assert audit_rows(db, "payment.refund") == []


def test_other_processors_are_refused_with_a_clear_message(admin, db, user_factory, plan_terms):
    from nproxy_core.billing.checkout import new_order_id

    buyer = user_factory()
    payment = Payment(
        order_id=new_order_id(),
        user_id=buyer.id,
        processor="demo",
        amount=Decimal("9.99"),
        currency="USD",
        status=PaymentState.FINISHED,
    )
    db.add(payment)
    db.commit()
    page = admin.get(f"/admin/payments/{payment.id}")
    assert page.html.select_one("#refund-form") is None
    assert "refunded in the processor's own dashboard" in page.html.select_one("#refund").text
    _, ok, errors = admin.act(f"/admin/payments/{payment.id}/refund", {"note": "n"})
    assert ok == [] and "own dashboard" in errors[0]
    assert fresh(db, payment).status == PaymentState.FINISHED


def test_an_unpaid_payment_is_not_refunded(admin, db, stars_plan, processor, user_factory, fake):
    buyer = user_factory()
    payment, _ = stars.start_stars_checkout(db, stars_plan, processor, buyer.id, link=False)
    db.commit()
    _, ok, errors = admin.act(f"/admin/payments/{payment.id}/refund", {"note": "n"})
    assert ok == []
    assert errors == [f"payment {payment.id} is waiting: only a paid payment is refunded"]
    assert fake.refunds == []


def test_refunding_a_pack_takes_its_unused_units(
    admin, db, stars_pack, processor, plan_terms, user_factory, fake
):
    buyer = user_factory()
    payment, _ = stars.start_stars_checkout(db, stars_pack, processor, buyer.id, link=False)
    db.commit()
    stars.apply_successful_payment(
        db, plan_terms, processor, successful_payment(payment, charge="ch-p", payer=PAYER)
    )
    db.commit()
    fake.charges["ch-p"] = PAYER
    _, ok, errors = admin.act(f"/admin/payments/{payment.id}/refund", {"note": "n"})
    assert errors == [] and "unused units" in ok[0]
    db.expire_all()
    (balance,) = db.scalars(sa.select(PackBalance).where(PackBalance.payment_id == payment.id))
    assert balance.revoked_at is not None and balance.units_left == 0


def _bot_actor() -> commands.BotActor:
    return commands.BotActor(telegram_id=9, name="telegram:@boss", user_id=None)


def test_admin_bot_refund_asks_then_refunds_once(stars_app, db, paid, fake):
    registry = stars_app.app.registry
    actor = _bot_actor()
    prompt = commands.run(db, registry, actor, "payments", ["refund", str(paid.id)])
    assert f"Refund payment #{paid.id} (100 XTR through stars" in prompt.text
    assert prompt.buttons == [[(f"Refund #{paid.id}", f"r:refund:{paid.id}")]]
    assert fake.refunds == []
    done = commands.press(db, registry, actor, f"r:refund:{paid.id}")
    db.commit()
    assert "refunded" in done.text and done.toast == "Done"
    assert fake.refunds == [{"user_id": PAYER, "telegram_payment_charge_id": "ch-77"}]
    assert fresh(db, paid).status == PaymentState.REFUNDED
    (row,) = audit_rows(db, "payment.refund")
    assert row.surface == "telegram" and row.actor == "telegram:@boss"
    again = commands.press(db, registry, actor, f"r:refund:{paid.id}")
    assert again.toast == "Refused" and "refunded already" in again.text
    assert len(fake.refunds) == 1


@pytest.mark.parametrize(
    ("args", "answer"),
    [
        (["refund"], "Usage: /payments refund PAYMENT_ID"),
        (["refund", "x1"], "Usage: /payments refund PAYMENT_ID"),
        (["refund", "999999"], "No payment #999999."),
    ],
)
def test_admin_bot_refund_bad_input(stars_app, db, args: list[str], answer: str) -> Any:
    reply = commands.run(db, stars_app.app.registry, _bot_actor(), "payments", args)
    assert reply.text == answer and reply.buttons is None


def test_admin_bot_forged_refund_button_changes_nothing(stars_app, db, paid, fake):
    for data in ("r:refund:abc", "r:other:1", f"r:refund:{paid.id}:1"):
        reply = commands.press(db, stars_app.app.registry, _bot_actor(), data)
        assert reply.toast in ("Not a valid button", "Refused")
    assert fake.refunds == [] and fresh(db, paid).status == PaymentState.FINISHED


def test_a_payment_handed_on_over_the_webhook_activates_once_and_refunds(
    stars_app, admin, db, stars_plan, processor, user_factory, fake
):
    """An update relayed to POST /billing/webhooks/stars, signed with the plugin's secret,
    is applied like the bot's own (once however often it comes); its refund finds the payer
    in the recorded update. Unsigned or forged, it is refused and changes nothing."""
    import json

    from nproxy_pay_stars import SIGNATURE_HEADER, sign_update

    buyer = user_factory()
    payment, _ = stars.start_stars_checkout(db, stars_plan, processor, buyer.id, link=False)
    db.commit()
    body = json.dumps(
        {"update_id": 5, "message": successful_payment(payment, charge="ch-w", payer=31337)}
    ).encode()
    signature = sign_update(processor.settings["nproxy.secret"], body)
    forged = stars_app.post(
        "/billing/webhooks/stars",
        body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: "sha256=" + "0" * 64},
        status=400,
    )
    assert forged.json["error"]["code"] == "validation_error"
    assert fresh(db, payment).status == PaymentState.WAITING
    for _ in range(2):
        res = stars_app.post(
            "/billing/webhooks/stars",
            body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )
        assert res.json["ok"] is True
    db.expire_all()
    assert (
        len(db.scalars(sa.select(BillingCycle).where(BillingCycle.user_id == buyer.id)).all()) == 1
    )
    fake.charges["ch-w"] = 31337
    _, ok, errors = admin.act(f"/admin/payments/{payment.id}/refund", {"note": "relayed"})
    assert errors == [] and ok
    assert fake.refunds == [{"user_id": 31337, "telegram_payment_charge_id": "ch-w"}]
    assert fresh(db, payment).status == PaymentState.REFUNDED
