"""Referrals (DESIGN 4.14) against real PostgreSQL: codes and links, who referred a new
account (never itself, never an existing account, never changed), the referrer's reward on the
referred account's first paid payment (once, idempotent, also when activations race) and its
claw-back on refund."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from apiclient import PASSWORD
from nproxy_core.audit.models import AuditEntry
from nproxy_core.billing.models import PackBalance
from nproxy_core.referrals import ReferralRefused, code_for, record_referral
from nproxy_core.referrals.models import Referral, ReferralReward
from nproxy_core.referrals.services import ALPHABET
from referrals.conftest import finish


def rewards(db: Session) -> list[ReferralReward]:
    db.expire_all()
    return list(db.scalars(sa.select(ReferralReward).order_by(ReferralReward.id)))


def balances(db: Session, user_id: int) -> list[PackBalance]:
    db.expire_all()
    return list(db.scalars(sa.select(PackBalance).where(PackBalance.user_id == user_id)))


def refer(db: Session, referrer: Any, referred: Any) -> Referral:
    referral = record_referral(db, referred.id, code_for(db, referrer.id))
    db.commit()
    return referral


# --- codes and links -----------------------------------------------------------------------


def test_every_account_has_one_short_unambiguous_code(db, ref_app, user_factory):
    ada, bob = user_factory(), user_factory()
    code = code_for(db, ada.id)
    db.commit()
    assert len(code) == 8 and set(code) <= set(ALPHABET)
    assert not set(code) & set("01OI")
    assert code_for(db, ada.id) == code
    assert code_for(db, bob.id) != code


def test_links_on_the_account_page(ref_app, user_factory, db):
    ada = user_factory("ada@example.com")
    page = _login(ref_app, ada.email).get("/dashboard")
    code = code_for(db, ada.id)
    assert f"https://t.me/nproxy_shop_bot?start=ref_{code}" in page.text
    assert f"http://localhost/r/{code}" in page.text


def _login(app, email):
    import webtest

    browser = webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"})
    token = browser.get("/api/v1/session").json["csrf_token"]
    browser.post("/login", {"email": email, "password": PASSWORD, "csrf_token": token})
    return browser


# --- the web link and registration ----------------------------------------------------------


def test_web_link_remembers_the_code_and_registration_records_the_referrer(
    ref_app, db, user_factory
):
    import webtest

    ada = user_factory("ada@example.com")
    code = code_for(db, ada.id)
    db.commit()
    visitor = webtest.TestApp(ref_app.app, extra_environ={"HTTP_HOST": "localhost"})
    res = visitor.get(f"/r/{code.lower()}")
    assert res.status_int == 303 and res.location.endswith("/register")
    assert visitor.cookies.get("nproxy_ref") == code
    token = visitor.get("/api/v1/session").json["csrf_token"]
    made = visitor.post_json(
        "/api/v1/auth/register",
        {"email": "new@example.com", "password": PASSWORD},
        headers={"X-CSRF-Token": token},
    )
    assert made.status_int == 201
    (referral,) = db.scalars(sa.select(Referral))
    assert (referral.referrer_id, referral.via) == (ada.id, "web")
    assert "nproxy_ref" not in visitor.cookies


def test_unknown_web_code_sets_no_cookie_and_registration_records_nothing(ref_app, db):
    import webtest

    visitor = webtest.TestApp(ref_app.app, extra_environ={"HTTP_HOST": "localhost"})
    res = visitor.get("/r/ZZZZZZZZ")
    assert res.status_int == 303 and "nproxy_ref" not in visitor.cookies
    assert visitor.get("/r/not-a-code%00", status="*").status_int in (303, 400)
    token = visitor.get("/api/v1/session").json["csrf_token"]
    visitor.set_cookie("nproxy_ref", "ZZZZZZZZ")
    visitor.post_json(
        "/api/v1/auth/register",
        {"email": "new@example.com", "password": PASSWORD},
        headers={"X-CSRF-Token": token},
    )
    assert db.scalar(sa.select(sa.func.count()).select_from(Referral)) == 0


# --- the rules of record_referral -------------------------------------------------------------


def test_never_itself(db, ref_app, user_factory):
    ada = user_factory()
    with pytest.raises(ReferralRefused, match="yourself"):
        record_referral(db, ada.id, code_for(db, ada.id))


def test_never_an_existing_account(db, ref_app, user_factory):
    ada, old = user_factory(), user_factory()
    old.created_at = old.created_at - dt.timedelta(days=3)
    db.commit()
    with pytest.raises(ReferralRefused, match="new accounts"):
        record_referral(db, old.id, code_for(db, ada.id))
    db.rollback()
    assert db.scalar(sa.select(sa.func.count()).select_from(Referral)) == 0


def test_never_an_account_that_has_paid(db, ref_app, user_factory, make_payment, plan_terms):
    ada, payer = user_factory(), user_factory()
    finish(db, plan_terms, make_payment(payer))
    with pytest.raises(ReferralRefused, match="new accounts"):
        record_referral(db, payer.id, code_for(db, ada.id))


def test_never_changed_later(db, ref_app, user_factory):
    ada, bob, new = user_factory(), user_factory(), user_factory()
    refer(db, ada, new)
    with pytest.raises(ReferralRefused, match="already invited"):
        record_referral(db, new.id, code_for(db, bob.id))
    db.rollback()
    (referral,) = db.scalars(sa.select(Referral))
    assert referral.referrer_id == ada.id


def test_unknown_or_malformed_code(db, ref_app, user_factory):
    new = user_factory()
    for code in ("ZZZZZZZZ", "", "ref_", "x" * 200, None):
        with pytest.raises(ReferralRefused, match="unknown"):
            record_referral(db, new.id, code)


def test_bot_payload_form_is_accepted(db, ref_app, user_factory):
    ada, new = user_factory(), user_factory()
    record_referral(db, new.id, "ref_" + code_for(db, ada.id).lower(), via="telegram")
    db.commit()
    assert db.get(Referral, new.id).via == "telegram"


# --- rewards ---------------------------------------------------------------------------------


def test_first_paid_payment_rewards_the_referrer_once(
    db, ref_app, user_factory, make_payment, plan_terms
):
    ada, new = user_factory(), user_factory()
    refer(db, ada, new)
    first = make_payment(new)
    assert finish(db, plan_terms, first).result == "activated"
    (reward,) = rewards(db)
    assert (reward.referrer_id, reward.referred_id, reward.payment_id, reward.units) == (
        ada.id,
        new.id,
        first.id,
        20,
    )
    (balance,) = balances(db, ada.id)
    assert balance.units == 20 and balance.label == "Referral reward"
    months = (balance.expires_at - balance.starts_at).days
    assert 365 <= months <= 366
    # The same notification again, and a second payment: nothing more.
    finish(db, plan_terms, first)
    finish(db, plan_terms, make_payment(new))
    assert len(rewards(db)) == 1 and len(balances(db, ada.id)) == 1
    audit = db.scalars(sa.select(AuditEntry).where(AuditEntry.action == "referral.rewarded")).all()
    assert len(audit) == 1


def test_reward_units_setting(make_app, db, user_factory, make_payment):
    from conftest import registry_service
    from nproxy_core.billing.interfaces import IPlan

    app = make_app(nproxy__referral__reward_units="5")
    ada, new = user_factory(), user_factory()
    refer(db, ada, new)
    finish(db, registry_service(app.app.registry, IPlan), make_payment(new))
    assert [b.units for b in balances(db, ada.id)] == [5]


def test_an_account_nobody_referred_rewards_nobody(
    db, ref_app, user_factory, make_payment, plan_terms
):
    new = user_factory()
    finish(db, plan_terms, make_payment(new))
    assert rewards(db) == []


def test_refund_takes_back_what_is_unused(db, ref_app, user_factory, make_payment, plan_terms):
    from nproxy_core.billing import subscriptions
    from nproxy_core.billing.models import NotificationSource
    from nproxy_core.plugins import EventKind, PaymentEvent, PaymentStatus

    ada, new = user_factory(), user_factory()
    refer(db, ada, new)
    paid = make_payment(new)
    finish(db, plan_terms, paid)
    (balance,) = balances(db, ada.id)
    balance.used = 7
    db.commit()
    refund = PaymentEvent(
        order_id=paid.order_id,
        status=PaymentStatus.REFUNDED,
        amount=None,
        currency=None,
        kind=EventKind.REFUND,
    )
    subscriptions.apply(db, plan_terms, "demo", refund, source=NotificationSource.WEBHOOK)
    db.commit()
    (balance,) = balances(db, ada.id)
    assert balance.revoked_at is not None and balance.used == 7 and balance.units_left == 0
    (reward,) = rewards(db)
    assert reward.clawed_back_at is not None
    (row,) = db.scalars(
        sa.select(AuditEntry).where(AuditEntry.action == "referral.reward_clawed_back")
    ).all()
    assert row.after["units_taken_back"] == 13
    # A later payment of the same account does not reward again.
    finish(db, plan_terms, make_payment(new))
    assert len(rewards(db)) == 1


def _at_once(engine, calls) -> list[BaseException]:
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call):
        with Session(bind=engine, expire_on_commit=False) as session:
            barrier.wait(timeout=30)
            try:
                call(session)
                session.commit()
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_two_activations_of_one_payment_at_once_reward_once(
    engine, db, ref_app, user_factory, make_payment, plan_terms
):
    ada, new = user_factory(), user_factory()
    refer(db, ada, new)
    paid = make_payment(new)
    errors = _at_once(engine, [lambda s: finish(s, plan_terms, paid) for _ in range(6)])
    assert not errors, errors
    assert len(rewards(db)) == 1 and len(balances(db, ada.id)) == 1


def test_two_first_payments_at_once_reward_once(
    engine, db, ref_app, user_factory, make_payment, plan_terms
):
    ada, new = user_factory(), user_factory()
    refer(db, ada, new)
    payments = [make_payment(new) for _ in range(4)]
    errors = _at_once(engine, [lambda s, p=p: finish(s, plan_terms, p) for p in payments])
    assert not errors, errors
    (reward,) = rewards(db)
    assert reward.payment_id in {p.id for p in payments}
    assert len(balances(db, ada.id)) == 1
