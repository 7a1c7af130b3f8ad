"""Buying with Telegram Stars in the customer bot: /buy sends an invoice in XTR, the
pre-checkout query is answered, and two copies of one successful_payment activate once."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from customerbot.conftest import customer
from nproxy_core.billing.models import BillingCycle, Payment, PaymentState, Plan


@pytest.fixture
def bot_settings(bot_settings):
    return {**bot_settings, "nproxy.payments": "stars"}


def _wait(condition, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_stars_purchase_activates_once(bot, telegram, chat, db):
    db.execute(sa.update(Plan).where(Plan.code == "monthly").values(price_stars=250))
    db.commit()
    chat.say("/start", contains="Welcome")
    offers = chat.say("/buy", contains="Plans and packs")
    assert "250 ★" in offers.text
    seen = chat.seen()
    telegram.press_button(chat.id, chat.button(offers, "monthly"), message=offers)
    invoice = telegram.wait_for(chat.id, method="sendInvoice", after=seen).invoice
    assert invoice["currency"] == "XTR" and invoice["provider_token"] == ""
    payload = invoice["payload"]
    payment = db.scalar(sa.select(Payment).where(Payment.order_id == payload))
    assert payment.status == PaymentState.WAITING and int(payment.amount) == 250

    user = {"id": chat.id, "is_bot": False, "first_name": "Ada"}
    telegram.send_update(
        {
            "pre_checkout_query": {
                "id": "pcq-1",
                "from": user,
                "currency": "XTR",
                "total_amount": 250,
                "invoice_payload": payload,
            }
        }
    )
    _wait(lambda: telegram.pre_checkout_answers, "no answerPreCheckoutQuery")
    assert str(telegram.pre_checkout_answers[0]["ok"]).lower() == "true"

    paid = {
        "message_id": 99,
        "date": int(time.time()),
        "chat": {"id": chat.id, "type": "private"},
        "from": user,
        "successful_payment": {
            "currency": "XTR",
            "total_amount": 250,
            "invoice_payload": payload,
            "telegram_payment_charge_id": "charge-1",
            "provider_payment_charge_id": "",
        },
    }
    seen = chat.seen()
    telegram.send_update({"message": paid})
    telegram.send_update({"message": dict(paid)})
    telegram.wait_for_message(chat.id, after=seen, contains="payment is confirmed")
    user_id = customer(db, chat.id).user_id
    cycles = sa.select(sa.func.count()).select_from(BillingCycle)
    _wait(lambda: db.scalar(cycles.where(BillingCycle.user_id == user_id)) == 1, "no cycle")
    # The second copy changes nothing and says nothing.
    _wait(lambda: db.expire_all() or True, "")
    db.expire_all()
    assert db.scalar(cycles.where(BillingCycle.user_id == user_id)) == 1
    assert "about 100%" in chat.say("/balance").text
    thanks = [m for m in telegram.sent_to(chat.id) if "payment is confirmed" in m.text]
    assert len(thanks) == 1


def test_a_replayed_pre_checkout_of_a_paid_order_is_refused(bot, telegram, chat, db):
    db.execute(sa.update(Plan).where(Plan.code == "monthly").values(price_stars=250))
    db.commit()
    chat.say("/start", contains="Welcome")
    offers = chat.say("/buy", contains="Plans and packs")
    seen = chat.seen()
    telegram.press_button(chat.id, chat.button(offers, "monthly"), message=offers)
    payload = telegram.wait_for(chat.id, method="sendInvoice", after=seen).invoice["payload"]
    db.execute(
        sa.update(Payment).where(Payment.order_id == payload).values(status=PaymentState.FINISHED)
    )
    db.commit()
    user = {"id": chat.id, "is_bot": False, "first_name": "Ada"}
    query = {"from": user, "currency": "XTR", "total_amount": 250, "invoice_payload": payload}
    telegram.send_update({"pre_checkout_query": {"id": "pcq-2", **query}})
    _wait(lambda: telegram.pre_checkout_answers, "no answerPreCheckoutQuery")
    answer = telegram.pre_checkout_answers[0]
    assert str(answer["ok"]).lower() == "false" and "already paid" in answer["error_message"]
