"""Buying with Telegram Stars in the customer bot: /buy sends an invoice in XTR, the
pre-checkout query is answered, two copies of one successful_payment activate once, a referred
user's purchase rewards the referrer once, and an admin's refund ends both."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from admin_support import AdminBrowser
from customerbot.conftest import customer
from nproxy_core.billing.models import BillingCycle, PackBalance, Payment, PaymentState, Plan
from nproxy_core.db import utcnow
from nproxy_core.referrals import services as referrals
from nproxy_core.referrals.models import ReferralReward


@pytest.fixture
def bot_settings(bot_settings):
    return {**bot_settings, "nproxy.payments": "stars"}


def _wait(condition, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _buy_button(offers, item: str) -> str:
    """The signed data of /buy's Stars button for ``item`` (``plan:CODE``), whatever its label."""
    for button in offers.buttons():
        if button.get("callback_data", "").startswith(f"b:{item}|"):
            return button["callback_data"]
    raise AssertionError(f"no Stars button for {item}: {offers.buttons()}")


def test_a_stars_invoice_is_written_in_the_customers_language(bot, telegram, chat, db):
    db.execute(sa.update(Plan).where(Plan.code == "monthly").values(price_stars=250))
    db.commit()
    chat.say("/start", contains="Welcome")
    pick = chat.say("/language", contains="language")
    chat.press(chat.button(pick, "Русский"), contains="Язык сохранён")
    offers = chat.say("/buy", contains="Тарифы")
    seen = chat.seen()
    telegram.press_button(chat.id, _buy_button(offers, "plan:monthly"), message=offers)
    invoice = telegram.wait_for(chat.id, method="sendInvoice", after=seen).invoice
    # The shipped plan's Russian name (migration 0027) and its period in Russian.
    assert invoice["title"] == "Месячный"
    assert invoice["description"] == "nproxy: тариф «Месячный» (1 месяц)"


def test_a_stars_purchase_activates_once(bot, telegram, chat, db):
    db.execute(sa.update(Plan).where(Plan.code == "monthly").values(price_stars=250))
    db.commit()
    chat.say("/start", contains="Welcome")
    offers = chat.say("/buy", contains="Plans and packs")
    assert "250 ★" in offers.text
    seen = chat.seen()
    telegram.press_button(chat.id, _buy_button(offers, "plan:monthly"), message=offers)
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
    telegram.press_button(chat.id, _buy_button(offers, "plan:monthly"), message=offers)
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


def test_a_referred_users_purchase_rewards_once_and_a_refund_ends_both(
    bot, telegram, chat, db, user_factory, make_app, bot_settings
):
    db.execute(sa.update(Plan).where(Plan.code == "monthly").values(price_stars=250))
    friend = user_factory("friend@example.com")
    code = referrals.code_for(db, friend.id)
    db.commit()
    chat.say(f"/start ref_{code}", contains="Welcome")
    offers = chat.say("/buy", contains="Plans and packs")
    seen = chat.seen()
    telegram.press_button(chat.id, _buy_button(offers, "plan:monthly"), message=offers)
    payload = telegram.wait_for(chat.id, method="sendInvoice", after=seen).invoice["payload"]
    user = {"id": chat.id, "is_bot": False, "first_name": "Ada"}
    query = {"from": user, "currency": "XTR", "total_amount": 250, "invoice_payload": payload}
    telegram.send_update({"pre_checkout_query": {"id": "pcq-7", **query}})
    _wait(lambda: telegram.pre_checkout_answers, "no answerPreCheckoutQuery")
    assert str(telegram.pre_checkout_answers[0]["ok"]).lower() == "true"
    paid = {
        "message_id": 77,
        "date": int(time.time()),
        "chat": {"id": chat.id, "type": "private"},
        "from": user,
        "successful_payment": {
            "currency": "XTR",
            "total_amount": 250,
            "invoice_payload": payload,
            "telegram_payment_charge_id": "charge-7",
            "provider_payment_charge_id": "",
        },
    }
    seen = chat.seen()
    telegram.send_update({"message": paid})
    telegram.send_update({"message": dict(paid)})
    telegram.wait_for_message(chat.id, after=seen, contains="payment is confirmed")
    buyer = customer(db, chat.id).user_id
    payment = db.scalar(sa.select(Payment).where(Payment.order_id == payload))
    rewards = sa.select(ReferralReward)
    _wait(lambda: db.expire_all() or db.scalars(rewards).all(), "no reward")
    (reward,) = db.scalars(rewards).all()
    assert (reward.referrer_id, reward.referred_id, reward.units) == (friend.id, buyer, 20)
    assert reward.payment_id == payment.id
    (gift,) = db.scalars(sa.select(PackBalance).where(PackBalance.user_id == friend.id))
    assert gift.units == 20

    # An admin refunds it on the web: the Stars go back, the cycle ends, the reward is taken.
    user_factory("boss@example.com", admin=True)
    app = make_app(**{k.replace(".", "__"): v for k, v in bot_settings.items()})
    admin = AdminBrowser(app).login("boss@example.com")
    _, ok, errors = admin.act(f"/admin/payments/{payment.id}/refund", {"note": "asked in the bot"})
    assert errors == [] and ok
    assert telegram.refunds == [{"user_id": chat.id, "telegram_payment_charge_id": "charge-7"}]
    db.expire_all()
    assert db.get(Payment, payment.id).status == PaymentState.REFUNDED
    (cycle,) = db.scalars(sa.select(BillingCycle).where(BillingCycle.user_id == buyer))
    assert cycle.ends_at <= utcnow()
    assert db.get(ReferralReward, reward.id).clawed_back_at is not None
    assert db.get(PackBalance, gift.id).revoked_at is not None
    assert "no plan yet" in chat.say("/balance").text
