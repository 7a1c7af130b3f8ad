"""The Telegram Stars flow in billing (DESIGN 4.14), against the fake Bot API and real
PostgreSQL: invoices in XTR, the answer to pre_checkout_query, and successful_payment
activating exactly once (replays and concurrent copies change nothing)."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.billing import stars
from nproxy_core.billing.models import (
    BillingCycle,
    PackBalance,
    Payment,
    PaymentNotification,
    PaymentState,
)
from nproxy_core.errors import ValidationError


def successful_payment(
    payment: Payment,
    *,
    charge: str = "ch-1",
    amount: int | None = None,
    payer: int = 4242,
    currency: str = "XTR",
) -> dict[str, Any]:
    return {
        "message_id": 99,
        "date": 1_760_000_000,
        "chat": {"id": payer, "type": "private"},
        "from": {"id": payer, "is_bot": False, "first_name": "Ada"},
        "successful_payment": {
            "currency": currency,
            "total_amount": int(payment.amount) if amount is None else amount,
            "invoice_payload": payment.order_id,
            "telegram_payment_charge_id": charge,
            "provider_payment_charge_id": "",
        },
    }


def query(payment: Payment, *, amount: int | None = None, currency: str = "XTR", qid="q1"):
    return {
        "id": qid,
        "from": {"id": 4242, "is_bot": False, "first_name": "Ada"},
        "currency": currency,
        "total_amount": int(payment.amount) if amount is None else amount,
        "invoice_payload": payment.order_id,
    }


@pytest.fixture
def buyer(user_factory):
    return user_factory("buyer@example.com")


@pytest.fixture
def invoice(db, stars_plan, processor, buyer):
    payment, fields = stars.start_stars_checkout(db, stars_plan, processor, buyer.id)
    db.commit()
    return payment, fields


def cycles(db: Session, user_id: int) -> list[BillingCycle]:
    db.expire_all()
    return list(db.scalars(sa.select(BillingCycle).where(BillingCycle.user_id == user_id)))


# --- invoices --------------------------------------------------------------------------------


def test_invoice_for_a_plan_is_in_stars_with_our_order_as_payload(db, invoice, fake):
    payment, fields = invoice
    assert (payment.currency, payment.amount, payment.status) == ("XTR", 100, PaymentState.WAITING)
    assert payment.processor == "stars" and payment.plan_id is not None
    assert fields["payload"] == payment.order_id and fields["currency"] == "XTR"
    assert fields["provider_token"] == "" and fields["prices"][0]["amount"] == 100
    (made,) = fake.invoices
    assert made["method"] == "createInvoiceLink" and made["payload"] == payment.order_id
    assert payment.checkout_url.startswith("https://t.me/$invoice")


def test_pack_without_stars_price_is_refused_and_nothing_recorded(
    db, stars_pack, processor, buyer, fake
):
    stars_pack.price_stars = None
    db.commit()
    with pytest.raises(ValidationError, match="not sold for Telegram Stars"):
        stars.start_stars_checkout(db, stars_pack, processor, buyer.id)
    db.rollback()
    assert db.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0
    assert fake.invoices == []


def test_invoice_telegram_refuses_keeps_a_failed_payment(db, stars_plan, processor, buyer, fake):
    fake.down = True
    with pytest.raises(ValidationError, match="did not make the invoice"):
        stars.start_stars_checkout(db, stars_plan, processor, buyer.id)
    db.commit()
    (payment,) = db.scalars(sa.select(Payment))
    assert payment.status == PaymentState.FAILED and payment.checkout_url is None


# --- pre_checkout_query ----------------------------------------------------------------------


def test_pre_checkout_ok_for_a_payable_order_and_answered(db, invoice, processor, fake):
    payment, _ = invoice
    answer = stars.answer_pre_checkout(db, processor, query(payment))
    assert answer == stars.PreCheckoutAnswer(True)
    assert fake.pre_checkout_answers == [{"pre_checkout_query_id": "q1", "ok": True}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": 99}, "costs 100 Stars, not 99"),
        ({"currency": "USD"}, "not USD"),
    ],
)
def test_pre_checkout_refuses_another_amount_or_currency(
    db, invoice, processor, fake, change, message
):
    payment, _ = invoice
    answer = stars.answer_pre_checkout(db, processor, query(payment, **change))
    assert not answer.ok and message in answer.error_message
    (sent,) = fake.pre_checkout_answers
    assert sent["ok"] is False and message in sent["error_message"]


def test_pre_checkout_refuses_unknown_and_expired_orders(db, invoice):
    payment, _ = invoice
    unknown = dict(query(payment), invoice_payload="no-such-order")
    assert stars.check_pre_checkout(db, unknown).error_message.startswith("This invoice names no")
    later = payment.created_at + stars.ORDER_VALID + dt.timedelta(minutes=1)
    answer = stars.check_pre_checkout(db, query(payment), now=later)
    assert not answer.ok and "expired" in answer.error_message
    payment.status = PaymentState.EXPIRED
    db.commit()
    assert "can no longer be paid" in stars.check_pre_checkout(db, query(payment)).error_message


def test_pre_checkout_replayed_changes_nothing_and_after_payment_is_refused(
    db, invoice, plan_terms, processor
):
    payment, _ = invoice
    first = stars.check_pre_checkout(db, query(payment))
    again = stars.check_pre_checkout(db, query(payment))
    assert first == again == stars.PreCheckoutAnswer(True)
    db.expire_all()
    assert db.get(Payment, payment.id).status == PaymentState.WAITING
    stars.apply_successful_payment(db, plan_terms, processor, successful_payment(payment))
    db.commit()
    answer = stars.check_pre_checkout(db, query(payment))
    assert not answer.ok and "already paid" in answer.error_message


# --- successful_payment ----------------------------------------------------------------------


def test_successful_payment_activates_once_and_a_replay_changes_nothing(
    db, invoice, plan_terms, processor, buyer
):
    payment, _ = invoice
    first = stars.apply_successful_payment(db, plan_terms, processor, successful_payment(payment))
    db.commit()
    assert first.result == "activated"
    (cycle,) = cycles(db, buyer.id)
    notes = db.scalar(sa.select(sa.func.count()).select_from(PaymentNotification))
    again = stars.apply_successful_payment(db, plan_terms, processor, successful_payment(payment))
    db.commit()
    assert again.result == "unchanged"
    assert [c.id for c in cycles(db, buyer.id)] == [cycle.id]
    assert db.scalar(sa.select(sa.func.count()).select_from(PaymentNotification)) == notes
    charge = stars.charge_of(db, payment.id)
    assert (charge.charge_id, charge.telegram_user_id, charge.amount) == ("ch-1", 4242, 100)
    assert db.get(Payment, payment.id).status == PaymentState.FINISHED


def test_successful_payment_copies_at_once_activate_one_cycle(
    engine, db, invoice, plan_terms, processor, buyer
):
    payment, _ = invoice
    message = successful_payment(payment)
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        with Session(bind=engine, expire_on_commit=False) as session:
            barrier.wait(timeout=30)
            try:
                outcome = stars.apply_successful_payment(session, plan_terms, processor, message)
                session.commit()
                results.append(outcome.result)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(results) == ["activated"] + ["unchanged"] * 7
    assert len(cycles(db, buyer.id)) == 1
    assert db.scalar(sa.select(sa.func.count()).select_from(stars.StarCharge)) == 1


def test_wrong_amount_is_flagged_for_review_and_not_activated(
    db, invoice, plan_terms, processor, buyer
):
    payment, _ = invoice
    outcome = stars.apply_successful_payment(
        db, plan_terms, processor, successful_payment(payment, amount=1)
    )
    db.commit()
    assert outcome.result == "review" and outcome.review.startswith("amount 1 instead of")
    assert cycles(db, buyer.id) == []
    assert db.get(Payment, payment.id).awaiting_review


def test_a_second_charge_for_one_order_goes_to_review(db, invoice, plan_terms, processor, buyer):
    payment, _ = invoice
    stars.apply_successful_payment(db, plan_terms, processor, successful_payment(payment))
    db.commit()
    second = stars.apply_successful_payment(
        db, plan_terms, processor, successful_payment(payment, charge="ch-2")
    )
    db.commit()
    assert second.review and "another processor payment" in second.review
    assert len(cycles(db, buyer.id)) == 1


def test_a_message_that_is_no_payment_is_refused_naming_the_problem(db, plan_terms, processor):
    with pytest.raises(ValidationError, match="total_amount"):
        stars.apply_successful_payment(
            db,
            plan_terms,
            processor,
            {
                "successful_payment": {
                    "currency": "XTR",
                    "total_amount": "lots",
                    "invoice_payload": "x",
                    "telegram_payment_charge_id": "c",
                }
            },
        )
    assert db.scalar(sa.select(sa.func.count()).select_from(stars.StarCharge)) == 0


def test_pack_bought_with_stars_gives_its_units(db, stars_pack, processor, plan_terms, buyer):
    payment, fields = stars.start_stars_checkout(db, stars_pack, processor, buyer.id, link=False)
    db.commit()
    assert fields["prices"][0]["amount"] == 60 and payment.checkout_url is None
    outcome = stars.apply_successful_payment(db, plan_terms, processor, successful_payment(payment))
    db.commit()
    assert outcome.result == "activated"
    (balance,) = db.scalars(sa.select(PackBalance).where(PackBalance.user_id == buyer.id))
    assert balance.units == 50 and balance.payment_id == payment.id
    assert payment.amount == Decimal(60)


# --- the web's checkout ----------------------------------------------------------------------


def test_web_checkout_with_stars_gives_an_invoice_link_in_xtr(stars_app, db, stars_plan, fake):
    from apiclient import ApiClient

    api = ApiClient(stars_app)
    api.register("web@example.com")
    res = api.post("/api/v1/billing/checkout", {"processor": "stars", "plan": "monthly"})
    assert res.status_int == 201
    assert res.json["checkout_url"].startswith("https://t.me/$invoice")
    (payment,) = db.scalars(sa.select(Payment))
    assert (payment.amount, payment.currency, payment.status) == (100, "XTR", PaymentState.WAITING)
    (made,) = fake.invoices
    assert made["payload"] == payment.order_id and made["prices"][0]["amount"] == 100
    # What the web sold is paid in Telegram like any Stars invoice.
    assert stars.check_pre_checkout(db, query(payment)).ok


def test_web_checkout_with_stars_refuses_what_has_no_stars_price(stars_app, db, fake):
    from apiclient import ApiClient

    api = ApiClient(stars_app)
    api.register("web@example.com")
    res = api.post(
        "/api/v1/billing/checkout", {"processor": "stars", "plan": "monthly"}, status=400
    )
    assert "no price in Stars" in res.json["error"]["message"]
    assert db.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0 and fake.invoices == []
