"""The issue's "done when" for Stars and referrals, end to end on the services the customer
bot calls, against the fake Bot API: a referred account buys a plan with Stars, Telegram
delivers successful_payment twice, the plan activates once and the referrer is rewarded once;
the admin bot's refund sends the Stars back, ends the cycle and takes the unused reward."""

from __future__ import annotations

import sqlalchemy as sa

from nproxy_core.adminbot import commands
from nproxy_core.billing import stars
from nproxy_core.billing.models import BillingCycle, PackBalance, Payment, PaymentState
from nproxy_core.db import utcnow
from nproxy_core.referrals import code_for, record_referral
from nproxy_core.referrals.models import ReferralReward
from pay_stars.test_flow import query, successful_payment


def test_referred_stars_purchase_activates_once_rewards_once_and_refund_ends_both(
    stars_app, db, stars_plan, processor, plan_terms, user_factory, fake
):
    referrer, buyer = user_factory("ada@example.com"), user_factory("tg@example.com")
    record_referral(db, buyer.id, "ref_" + code_for(db, referrer.id), via="telegram")
    db.commit()

    payment, fields = stars.start_stars_checkout(db, stars_plan, processor, buyer.id, link=False)
    db.commit()
    processor.send_invoice(777, fields)
    (sent,) = fake.invoices
    assert (sent["method"], sent["chat_id"], sent["payload"]) == (
        "sendInvoice",
        777,
        payment.order_id,
    )
    fake.charges["stx-1"] = 777
    answer = stars.answer_pre_checkout(db, processor, dict(query(payment), id="pcq-1"))
    assert answer.ok and fake.pre_checkout_answers[-1]["ok"] is True
    update = successful_payment(payment, charge="stx-1", payer=777)
    results = []
    for _ in range(2):
        results.append(stars.apply_successful_payment(db, plan_terms, processor, update).result)
        db.commit()
    assert results == ["activated", "unchanged"]

    db.expire_all()
    (cycle,) = db.scalars(sa.select(BillingCycle).where(BillingCycle.user_id == buyer.id))
    (reward,) = db.scalars(sa.select(ReferralReward))
    assert (reward.referrer_id, reward.payment_id, reward.units) == (referrer.id, payment.id, 20)
    (balance,) = db.scalars(sa.select(PackBalance).where(PackBalance.user_id == referrer.id))
    assert balance.units_left == 20

    actor = commands.BotActor(telegram_id=1, name="telegram:@boss", user_id=None)
    commands.run(db, stars_app.app.registry, actor, "payments", ["refund", str(payment.id)])
    done = commands.press(db, stars_app.app.registry, actor, f"r:refund:{payment.id}")
    db.commit()
    assert "refunded" in done.text
    assert fake.refunds == [{"user_id": 777, "telegram_payment_charge_id": "stx-1"}]
    db.expire_all()
    assert db.get(Payment, payment.id).status == PaymentState.REFUNDED
    assert db.get(BillingCycle, cycle.id).ends_at <= utcnow()
    assert db.get(PackBalance, balance.id).units_left == 0
    assert db.get(ReferralReward, reward.id).clawed_back_at is not None
    # The same update once more, after all that: nothing comes back.
    assert stars.apply_successful_payment(db, plan_terms, processor, update).result == "unchanged"
