"""Stripe subscriptions through the real app, a real database and the fake Stripe API: the
checkout, renewals, cancelling, refunds, failed renewals, duplicates and reconciliation."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from fakes.stripe import deliver
from nproxy_core.alerts.models import Alert
from nproxy_core.billing.cycles import add_months
from nproxy_core.billing.models import PaymentState, SubscriptionState
from nproxy_core.billing.presenters import isoformat
from nproxy_core.billing.tasks import reconcile_payments
from nproxy_core.db import utcnow
from nproxy_core.tasks import run_now
from pay_stripe.support import (
    buy,
    cycles,
    notifications,
    payment,
    payments,
    post_event,
    post_signed,
    signed,
    subscriptions,
)

MONTH = dt.timedelta(days=31)


def send(app: Any, fake: Any, events: list[dict[str, Any]]) -> list[Any]:
    answers = [post_event(app, event, fake.webhook_secret) for event in events]
    assert [a.status_int for a in answers] == [200] * len(answers), [a.text for a in answers]
    return [a.json["result"] for a in answers]


def session_of(fake: Any, order_id: str) -> dict[str, Any]:
    return next(s for s in fake.sessions if s["client_reference_id"] == order_id)


def paid(db: Any) -> list[Any]:
    """The cycles that give access (a refund may shrink one to nothing)."""
    return [c for c in cycles(db) if c.ends_at > c.starts_at]


def subscribed(app: Any, api: Any, fake: Any, email: str = "card@example.com") -> tuple:
    order_id = buy(api, email)
    session = session_of(fake, order_id)
    send(app, fake, fake.complete_checkout(session["id"]))
    return order_id, fake.get(session["id"])["subscription"]


# --- checkout --------------------------------------------------------------------------------


def test_checkout_of_a_recurring_plan_is_a_subscription_session(stripe_api, fake, db):
    order_id = buy(stripe_api)
    [request] = [r for r in fake.requests if r.path == "/v1/checkout/sessions"]
    form = request.form()
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert request.api_key == fake.secret_key
    assert form["mode"] == "subscription"
    assert form["client_reference_id"] == order_id
    assert form["metadata"] == {"order_id": order_id}
    assert form["subscription_data"] == {"metadata": {"order_id": order_id}}
    assert form["customer_email"] == "card@example.com"
    price = form["line_items"][0]["price_data"]
    assert price == {
        "currency": "usd",
        "unit_amount": "999",
        "product_data": {"name": "nproxy Monthly plan (1 month)"},
        "recurring": {"interval": "month", "interval_count": "1"},
    }
    assert form["success_url"] == f"http://localhost/billing/payments/{order_id}/success"
    row = payment(db, order_id)
    session = session_of(fake, order_id)
    assert row.invoice_id == session["id"] and row.checkout_url == session["url"]
    assert row.status == PaymentState.WAITING


def test_the_checkout_describes_the_plan_in_the_buyers_language(stripe_api, fake):
    stripe_api.app.set_cookie("lang", "ru")
    buy(stripe_api)
    [request] = [r for r in fake.requests if r.path == "/v1/checkout/sessions"]
    product = request.form()["line_items"][0]["price_data"]["product_data"]
    # The shipped plan's Russian name (migration 0027), its period in Russian.
    assert product == {"name": "nproxy: тариф «Месячный» (1 месяц)"}


def test_a_pack_is_one_payment_and_its_refund_takes_the_unused_units(
    stripe_api, stripe_app, fake, db
):
    from nproxy_core.audit import Actor, Surface
    from nproxy_core.billing.packs import add_pack

    add_pack(
        db,
        "small",
        {"name": "Small", "price": "4.99", "currency": "USD", "units": 100},
        actor=Actor("admin@example.com", Surface.CLI),
    )
    db.commit()
    order_id = buy(stripe_api, pack="small")
    form = next(r for r in fake.requests if r.path == "/v1/checkout/sessions").form()
    assert form["mode"] == "payment"
    assert "recurring" not in form["line_items"][0]["price_data"]
    assert form["payment_intent_data"] == {"metadata": {"order_id": order_id}}
    session = session_of(fake, order_id)
    assert send(stripe_app, fake, fake.complete_checkout(session["id"])) == ["activated"]
    me = stripe_api.get("/api/v1/me").json
    assert [p["units_left"] for p in me["packs"]] == [100]
    charge = next(o for o in fake.objects.values() if o["object"] == "charge")
    assert send(stripe_app, fake, fake.refund(charge["id"])) == ["refunded"]
    assert stripe_api.get("/api/v1/me").json["packs"] == []
    assert subscriptions(db) == []


# --- Done when: renews twice, stops after cancellation, a refund ends the cycle --------------


def test_renews_twice_stops_after_cancelling_and_a_refund_ends_the_cycle(
    stripe_api, stripe_app, fake, db, outbox
):
    before = utcnow()
    order_id, sub_id = subscribed(stripe_app, stripe_api, fake)
    [first] = cycles(db)
    assert before <= first.starts_at <= utcnow()
    assert first.ends_at == add_months(first.starts_at, 1)
    [subscription] = subscriptions(db)
    assert (subscription.state, subscription.external_id) == (SubscriptionState.ACTIVE, sub_id)
    assert payment(db, order_id).subscription_id == subscription.id

    # Two renewals, no action by the user: each cycle starts where the last one ended.
    assert send(stripe_app, fake, fake.renew(sub_id)) == ["activated"]
    assert send(stripe_app, fake, fake.renew(sub_id)) == ["activated"]
    first, second, third = cycles(db)
    assert second.starts_at == first.ends_at and third.starts_at == second.ends_at
    assert third.ends_at == add_months(third.starts_at, 1)
    assert [c.request_limit for c in (first, second, third)] == [300, 300, 300]
    renewals = [p for p in payments(db) if p.order_id != order_id]
    assert [p.status for p in renewals] == [PaymentState.FINISHED] * 2
    assert {p.subscription_id for p in renewals} == {subscription.id}
    view = stripe_api.get("/api/v1/billing/subscription").json["subscription"]
    assert view["renews"] is True and view["renews_on"] == isoformat(third.ends_at)

    # Cancel renewal: Stripe is told, the paid cycles run to their end.
    res = stripe_api.post("/api/v1/billing/subscription/cancel", {})
    assert res.status_int == 200, res.text
    assert res.json["subscription"]["renews"] is False
    assert res.json["subscription"]["ends_on"] == isoformat(third.ends_at)
    update = next(r for r in fake.requests if r.path == f"/v1/subscriptions/{sub_id}")
    assert update.method == "POST" and update.form() == {"cancel_at_period_end": "true"}
    assert send(stripe_app, fake, fake.updates()) == ["subscription"]
    # The period ends: Stripe deletes the subscription instead of renewing it.
    assert send(stripe_app, fake, fake.renew(sub_id)) == ["subscription"]
    assert fake.renew(sub_id) == []
    [subscription] = subscriptions(db)
    assert subscription.state == SubscriptionState.ENDED
    assert len(cycles(db)) == 3
    assert stripe_api.get("/api/v1/me").json["subscription"]["status"] == "active"

    # A refund of the last renewal ends its cycle (not started yet: it shrinks to nothing).
    last = fake.get(fake.get(sub_id)["latest_invoice"])
    assert send(stripe_app, fake, fake.refund(last["charge"])) == ["refunded"]
    first, second, third = cycles(db)
    assert third.ends_at == third.starts_at == second.ends_at
    assert payment(db, renewals[-1].order_id).status == PaymentState.REFUNDED
    # The refunded invoice's invoice.paid, replayed, grants nothing.
    replay = next(e for e in fake.events if e["data"]["object"].get("id") == last["id"])
    assert send(stripe_app, fake, [replay]) == ["ignored"]
    assert len(paid(db)) == 2
    # Nothing failed: no "payment failed" email (only the address check sent at sign-up).
    assert not [m for m in outbox if "could not be charged" in m["subject"]]


def test_a_refund_of_the_running_cycle_ends_it_now(stripe_api, stripe_app, fake, db):
    order_id, sub_id = subscribed(stripe_app, stripe_api, fake)
    invoice = fake.get(fake.get(sub_id)["latest_invoice"])
    before = utcnow()
    assert send(stripe_app, fake, fake.refund(invoice["charge"])) == ["refunded"]
    [cycle] = cycles(db)
    assert before <= cycle.ends_at <= utcnow()
    assert payment(db, order_id).status == PaymentState.REFUNDED
    assert stripe_api.get("/api/v1/me").json["subscription"]["status"] == "expired"


def _scenario(stripe_app: Any, stripe_api: Any, fake: Any) -> tuple[str, str, list[dict]]:
    """Every event of: checkout, two renewals, cancel at period end, the end, a refund of the
    second renewal. None delivered yet."""
    order_id = buy(stripe_api)
    session = session_of(fake, order_id)
    events = fake.complete_checkout(session["id"])
    sub_id = fake.get(session["id"])["subscription"]
    events += fake.renew(sub_id)
    events += fake.renew(sub_id)
    last = fake.get(fake.get(sub_id)["latest_invoice"])
    events += fake.cancel_at_period_end(sub_id)
    events += fake.renew(sub_id)
    events += fake.refund(last["charge"])
    return order_id, last["id"], events


def _forty(events: list[dict], seed: int) -> list[dict]:
    rng = random.Random(seed)
    deliveries = list(events) + [rng.choice(events) for _ in range(40 - len(events))]
    rng.shuffle(deliveries)
    return deliveries


def _check_outcome(db: Any, order_id: str, refunded_invoice: str, started: dt.datetime) -> None:
    """Exactly the cycles of the scenario: the checkout's and the first renewal's, a month each,
    one after the other; the refunded renewal gives no access past the refund."""
    rows = cycles(db)
    by_payment = {c.payment_id: c for c in rows}
    pays = payments(db)
    checkout = next(p for p in pays if p.order_id == order_id)
    renewals = [p for p in pays if p.order_id != order_id]
    [second_renewal] = [p for p in renewals if p.invoice_id == refunded_invoice]
    [first_renewal] = [p for p in renewals if p is not second_renewal]
    assert checkout.status == first_renewal.status == PaymentState.FINISHED
    assert second_renewal.status == PaymentState.REFUNDED
    months = sorted(
        [by_payment[checkout.id], by_payment[first_renewal.id]], key=lambda c: c.starts_at
    )
    assert months[1].starts_at == months[0].ends_at
    for cycle in months:
        assert cycle.ends_at == add_months(cycle.starts_at, 1)
    assert started <= months[0].starts_at <= utcnow()
    refunded = by_payment.get(second_renewal.id)
    # Refunded before it started, it shrank to nothing; while running, it ended then.
    assert refunded is None or refunded.ends_at <= max(utcnow(), refunded.starts_at)
    giving = [c for c in rows if c.ends_at > max(utcnow(), c.starts_at)]
    assert len(rows) <= 3 and len(giving) == 2
    [subscription] = subscriptions(db)
    assert subscription.state == SubscriptionState.ENDED
    assert not any(p.needs_review for p in pays)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forty_duplicate_and_shuffled_deliveries_give_exactly_those_cycles(
    stripe_api, stripe_app, fake, db, seed
):
    started = utcnow()
    order_id, refunded, events = _scenario(stripe_app, stripe_api, fake)
    deliveries = _forty(events, seed)
    assert {e["id"] for e in deliveries} == {e["id"] for e in events}
    send(stripe_app, fake, deliveries)
    _check_outcome(db, order_id, refunded, started)
    assert len(notifications(db)) == 40


def test_forty_deliveries_at_once_from_threads_give_exactly_those_cycles(
    stripe_api, stripe_app, fake, db, live_server
):
    live_server.start(stripe_app.app)
    started = utcnow()
    order_id, refunded, events = _scenario(stripe_app, stripe_api, fake)
    deliveries = _forty(events, 7)
    barrier = threading.Barrier(len(deliveries))
    answers: list[Any] = []
    lock = threading.Lock()

    def one(event: dict) -> None:
        barrier.wait(timeout=30)
        answer = deliver(live_server.url + "/billing/webhooks/stripe", event, fake.webhook_secret)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one, args=(e,)) for e in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [a.status for a in answers] == [200] * 40, [a.body for a in answers if a.status != 200]
    _check_outcome(db, order_id, refunded, started)
    assert len(notifications(db)) == 40


# --- reconciliation --------------------------------------------------------------------------


def test_reconciliation_alone_activates_a_paid_checkout(stripe_api, stripe_app, fake, db):
    order_id = buy(stripe_api)
    session = session_of(fake, order_id)
    fake.complete_checkout(session["id"])  # every webhook is lost
    counts = run_now(stripe_app.app.registry, reconcile_payments)
    assert counts["activated"] == 1
    assert payment(db, order_id).status == PaymentState.FINISHED
    assert len(cycles(db)) == 1
    [subscription] = subscriptions(db)
    assert subscription.external_id == session["subscription"] and subscription.customer_id
    assert any(r.path == f"/v1/checkout/sessions/{session['id']}" for r in fake.requests)
    # Nothing open is left: the next run asks about the checkout no more.
    fake.clear()
    run_now(stripe_app.app.registry, reconcile_payments)
    assert not any(r.path.startswith("/v1/checkout/sessions/") for r in fake.requests)


def test_reconciliation_runs_on_a_schedule_every_five_minutes(stripe_app):
    from nproxy_core.tasks import CELERY_APP

    celery_app = stripe_app.app.registry[CELERY_APP]
    entry = celery_app.conf.beat_schedule["billing.reconcile_payments"]
    assert entry["task"] == "billing.reconcile_payments" and entry["task"] in celery_app.tasks
    assert entry["schedule"] == dt.timedelta(minutes=5)


def test_reconciliation_finds_a_renewal_whose_webhook_was_lost(stripe_api, stripe_app, fake, db):
    _order, sub_id = subscribed(stripe_app, stripe_api, fake)
    fake.renew(sub_id)  # invoice.paid lost
    with db.begin():
        # The local period end has come (as it will when the renewal is due).
        db.execute(sa.update(type(subscriptions(db)[0])).values(current_period_end=utcnow()))
    counts = run_now(stripe_app.app.registry, reconcile_payments)
    assert counts["subscriptions"] >= 1
    first, second = cycles(db)
    assert second.starts_at == first.ends_at


def test_reconciliation_finds_a_past_due_renewal_paid_later_whose_webhook_was_lost(
    stripe_api, stripe_app, fake, db
):
    # Stripe's events were sent before the reconciliation asks (the fake's clock runs a second
    # ahead per event: set it back).
    fake.clock -= 600
    _order, sub_id = subscribed(stripe_app, stripe_api, fake)
    declined = fake.renew(sub_id, paid=False)
    send(stripe_app, fake, declined)
    assert subscriptions(db)[0].state == SubscriptionState.PAST_DUE
    # The customer fixes the card at once; Stripe's invoice.paid never arrives.
    fake.pay_invoice(declined[0]["data"]["object"]["id"])
    run_now(stripe_app.app.registry, reconcile_payments)
    first, second = cycles(db)
    assert second.starts_at == first.ends_at
    assert subscriptions(db)[0].state == SubscriptionState.ACTIVE


def test_an_unpaid_open_checkout_stays_open_under_reconciliation(stripe_api, stripe_app, fake, db):
    order_id = buy(stripe_api)
    counts = run_now(stripe_app.app.registry, reconcile_payments)
    assert counts["checked"] == 1 and "activated" not in counts
    assert payment(db, order_id).status == PaymentState.WAITING
    assert cycles(db) == [] and subscriptions(db) == []


# --- a renewal that fails --------------------------------------------------------------------


def test_a_failed_renewal_emails_the_user_once_alerts_admins_and_a_paid_retry_renews(
    stripe_api, stripe_app, fake, db, outbox
):
    _order, sub_id = subscribed(stripe_app, stripe_api, fake)
    events = fake.renew(sub_id, paid=False)
    assert [e["type"] for e in events] == [
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    send(stripe_app, fake, events + events)  # delivered twice
    assert len(cycles(db)) == 1
    [subscription] = subscriptions(db)
    assert subscription.state == SubscriptionState.PAST_DUE
    [mail] = [m for m in outbox if "could not be charged" in m["subject"]]
    assert mail["to"] == "card@example.com"
    assert "could not be charged" in mail["subject"]
    invoice = events[0]["data"]["object"]
    assert invoice["hosted_invoice_url"] in mail["body"]
    assert "http://localhost/dashboard#subscription" in mail["body"]
    db.expire_all()
    [alert] = db.scalars(sa.select(Alert).where(Alert.kind == "payment_failed")).all()
    assert alert.subject == f"subscription {subscription.id}" and alert.state == "open"
    page = stripe_app.get("/dashboard")
    assert "could not be charged" in page.text

    # The customer fixes the card; Stripe charges the same invoice.
    assert send(stripe_app, fake, fake.pay_invoice(invoice["id"])) == ["activated"]
    first, second = cycles(db)
    assert second.starts_at == first.ends_at
    [subscription] = subscriptions(db)
    assert subscription.state == SubscriptionState.ACTIVE
    db.expire_all()
    assert db.scalar(sa.select(Alert.state).where(Alert.kind == "payment_failed")) == "resolved"
    assert len([m for m in outbox if "could not be charged" in m["subject"]]) == 1


# --- bad input -------------------------------------------------------------------------------


def test_a_completed_but_unpaid_checkout_changes_nothing(stripe_api, stripe_app, fake, db):
    order_id = buy(stripe_api)
    events = fake.complete_checkout(session_of(fake, order_id)["id"], paid=False)
    completed = [e for e in events if e["type"] == "checkout.session.completed"]
    assert send(stripe_app, fake, completed) == ["unchanged"]
    assert payment(db, order_id).status == PaymentState.WAITING
    assert cycles(db) == []


def test_an_event_for_an_unknown_session_is_recorded_flagged_and_never_activates(
    stripe_api, stripe_app, fake, db
):
    order_id = buy(stripe_api)
    [event] = [
        e
        for e in fake.complete_checkout(session_of(fake, order_id)["id"])
        if e["type"] == "checkout.session.completed"
    ]
    event["data"]["object"]["client_reference_id"] = "no-such-order"
    event["data"]["object"]["metadata"] = {"order_id": "no-such-order"}
    assert send(stripe_app, fake, [event]) == ["unknown_order"]
    [note] = notifications(db)
    assert note.needs_review and note.payment_id is None and note.order_id == "no-such-order"
    assert cycles(db) == [] and subscriptions(db) == []


def test_a_renewal_of_an_unknown_subscription_or_customer_is_flagged(
    stripe_api, stripe_app, fake, db
):
    _order, sub_id = subscribed(stripe_app, stripe_api, fake)
    [event] = fake.renew(sub_id)
    invoice = event["data"]["object"]
    invoice["subscription"] = "sub_unknown"
    invoice["customer"] = "cus_unknown"
    invoice["subscription_details"] = {"metadata": {}}
    assert send(stripe_app, fake, [event]) == ["unknown_subscription"]
    note = notifications(db)[-1]
    assert note.needs_review and note.payment_id is None
    assert "unknown subscription" in note.detail
    assert len(cycles(db)) == 1
    db.expire_all()
    assert db.scalar(sa.select(Alert.kind).where(Alert.kind == "payment_flagged"))


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("amount_paid", 499, "amount"), ("currency", "eur", "currency")],
)
def test_a_renewal_that_does_not_match_the_plan_goes_to_review(
    stripe_api, stripe_app, fake, db, field, value, reason
):
    _order, sub_id = subscribed(stripe_app, stripe_api, fake)
    [event] = fake.renew(sub_id)
    event["data"]["object"][field] = value
    assert send(stripe_app, fake, [event]) == ["review"]
    renewal = payments(db)[-1]
    assert renewal.needs_review and reason in renewal.review_reason
    assert len(cycles(db)) == 1
    # A clean copy later changes nothing: an admin decides.
    event["data"]["object"][field] = {"amount_paid": 999, "currency": "usd"}[field]
    assert send(stripe_app, fake, [event]) == ["unchanged"]
    assert len(cycles(db)) == 1 and payments(db)[-1].needs_review


def test_a_checkout_that_does_not_match_the_plan_goes_to_review(stripe_api, stripe_app, fake, db):
    order_id = buy(stripe_api)
    events = fake.complete_checkout(session_of(fake, order_id)["id"])
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    completed["data"]["object"]["amount_total"] = 1
    assert send(stripe_app, fake, [completed]) == ["review"]
    row = payment(db, order_id)
    assert row.needs_review and "amount" in row.review_reason
    assert cycles(db) == []


@pytest.mark.parametrize(
    "case",
    [
        "forged",
        "other-secret",
        "expired",
        "unsigned",
        "empty-header",
        "tampered",
        "no-v1",
        "not-json",
    ],
)
def test_forged_expired_or_unsigned_webhooks_get_4xx_and_change_nothing(
    stripe_api, stripe_app, fake, db, case
):
    import time

    order_id = buy(stripe_api)
    events = fake.complete_checkout(session_of(fake, order_id)["id"])
    event = next(e for e in events if e["type"] == "checkout.session.completed")
    body, headers = signed(event, fake.webhook_secret)
    if case == "forged":
        headers["Stripe-Signature"] = f"t={int(time.time())},v1={'0' * 64}"
    elif case == "other-secret":
        body, headers = signed(event, "whsec_someone_else")
    elif case == "expired":
        body, headers = signed(event, fake.webhook_secret, timestamp=int(time.time()) - 301)
    elif case == "unsigned":
        del headers["Stripe-Signature"]
    elif case == "empty-header":
        headers["Stripe-Signature"] = ""
    elif case == "tampered":
        body = body.replace(b'"amount_total": 999', b'"amount_total": 1')
        assert b'"amount_total": 1' in body
    elif case == "no-v1":
        headers["Stripe-Signature"] = headers["Stripe-Signature"].split(",v1=")[0]
    elif case == "not-json":
        body, headers = signed(b"\xff{not json", fake.webhook_secret)
    res = post_signed(stripe_app, body, headers)
    assert 400 <= res.status_int < 500, res.text
    assert res.json["error"]["code"] == "validation_error"
    assert fake.webhook_secret not in res.text
    assert payment(db, order_id).status == PaymentState.WAITING
    assert notifications(db) == [] and cycles(db) == [] and subscriptions(db) == []


def test_a_signature_among_several_v1_values_and_a_recent_timestamp_is_accepted(
    stripe_api, stripe_app, fake, db
):
    import time

    order_id = buy(stripe_api)
    events = fake.complete_checkout(session_of(fake, order_id)["id"])
    event = next(e for e in events if e["type"] == "checkout.session.completed")
    body, headers = signed(
        event,
        fake.webhook_secret,
        timestamp=int(time.time()) - 250,
        extra_v1=["ab" * 32, "cd" * 32],
    )
    assert headers["Stripe-Signature"].count("v1=") == 3
    res = post_signed(stripe_app, body, headers)
    assert res.status_int == 200 and res.json["result"] == "activated"


def test_an_event_nobody_handles_is_recorded_and_answered(stripe_app, fake, db):
    event = {
        "id": "evt_other",
        "object": "event",
        "created": fake.clock,
        "type": "customer.created",
        "data": {"object": {"id": "cus_x", "object": "customer"}},
    }
    assert send(stripe_app, fake, [event]) == ["ignored"]
    [note] = notifications(db)
    assert not note.needs_review and note.raw["type"] == "customer.created"


def test_a_second_renewing_subscription_is_refused(stripe_api, stripe_app, fake, db):
    subscribed(stripe_app, stripe_api, fake)
    res = stripe_api.post("/api/v1/billing/checkout", {"processor": "stripe"})
    assert res.status_int == 409 and res.json["error"]["code"] == "conflict"
    assert "already have a subscription" in res.json["error"]["message"]
    assert len(fake.sessions) == 1


def test_stripe_errors_answer_502_and_keep_the_key_secret(stripe_api, fake, db):
    from fakes._server import Reply

    stripe_api.register("x@example.com")
    fake.fail_next(
        Reply(
            402,
            {"error": {"type": "card_error", "code": "card_declined", "message": "Declined."}},
        )
    )
    res = stripe_api.post("/api/v1/billing/checkout", {"processor": "stripe"})
    assert res.status_int == 502 and res.json["error"]["code"] == "payment_unavailable"
    assert fake.secret_key not in res.text
    [row] = payments(db)
    assert row.status == PaymentState.FAILED and row.checkout_url is None


# --- the account page's actions --------------------------------------------------------------


def test_cancel_and_manage_from_the_account_page(stripe_api, stripe_app, fake, db):
    _order, sub_id = subscribed(stripe_app, stripe_api, fake)
    page = stripe_app.get("/dashboard")
    section = page.html.find(id="subscription")
    assert "Renews on" in section.text and "Manage subscription" in section.text
    assert "Monthly" in section.text and "Card (Stripe)" in section.text
    form = next(f for f in page.forms.values() if f.action == "/billing/subscription/manage")
    res = form.submit()
    assert res.status_int == 303 and res.location.startswith(
        "https://billing.stripe.com/p/session/"
    )
    portal = next(r for r in fake.requests if r.path == "/v1/billing_portal/sessions").form()
    assert portal == {
        "customer": fake.get(sub_id)["customer"],
        "return_url": "http://localhost/dashboard",
    }

    form = next(f for f in page.forms.values() if f.action == "/billing/subscription/cancel")
    res = form.submit()
    assert res.status_int == 303 and "done=renewal-cancelled" in res.location
    page = res.follow()
    assert "Renewal cancelled" in page.text
    section = page.html.find(id="subscription")
    assert "Ends on" in section.text and "Cancel renewal" not in section.text
    assert subscriptions(db)[0].state == SubscriptionState.ENDING
    history = stripe_app.get("/billing")
    assert "Card (Stripe)" in history.text and "renewal is cancelled" not in history.text


def test_the_payment_history_names_every_processor_and_marks_renewals(
    stripe_api, stripe_app, fake, db
):
    order_id, sub_id = subscribed(stripe_app, stripe_api, fake)
    send(stripe_app, fake, fake.renew(sub_id))
    demo = stripe_api.post("/api/v1/billing/checkout", {"processor": "demo"})
    assert demo.status_int == 201, demo.text
    page = stripe_app.get("/billing")
    methods = {
        row["data-order"]: " ".join(row.find_all("td")[2].text.split())
        for row in page.html.find(id="payments").find_all("tr", attrs={"data-order": True})
    }
    [renewal] = [p.order_id for p in payments(db) if p.subscription_id and p.order_id != order_id]
    assert methods == {
        order_id: "Card (Stripe)",
        renewal: "Card (Stripe) (renewal)",
        demo.json["payment_id"]: "Demo (no real money)",
    }


def test_cancel_without_csrf_or_subscription_changes_nothing(stripe_api, stripe_app, fake, db):
    _order, sub_id = subscribed(stripe_app, stripe_api, fake)
    res = stripe_app.post("/billing/subscription/cancel", {}, status="*")
    assert res.status_int in (400, 403)
    res = stripe_app.post_json("/api/v1/billing/subscription/cancel", {}, status="*")
    assert res.status_int in (400, 403)
    assert subscriptions(db)[0].state == SubscriptionState.ACTIVE
    assert not any(r.path == f"/v1/subscriptions/{sub_id}" for r in fake.requests)

    other = type(stripe_api)(stripe_app)
    stripe_app.reset()
    other.register("nobody@example.com")
    res = other.post("/api/v1/billing/subscription/cancel", {})
    assert res.status_int == 404 and res.json["error"]["code"] == "not_found"
    assert other.get("/api/v1/billing/subscription").json == {"subscription": None}


def test_a_cancel_stripe_refuses_changes_nothing(stripe_api, stripe_app, fake, db):
    from fakes._server import Reply

    subscribed(stripe_app, stripe_api, fake)
    fake.fail_next(Reply(500, {"error": {"type": "api_error", "message": "Something broke"}}))
    fake.fail_next(Reply(500, {"error": {"type": "api_error", "message": "Something broke"}}))
    res = stripe_api.post("/api/v1/billing/subscription/cancel", {})
    assert res.status_int == 502 and res.json["error"]["code"] == "payment_unavailable"
    assert subscriptions(db)[0].state == SubscriptionState.ACTIVE
    fake.fail_next(Reply(500, {"error": {"type": "api_error", "message": "Something broke"}}))
    fake.fail_next(Reply(500, {"error": {"type": "api_error", "message": "Something broke"}}))
    page = stripe_app.get("/dashboard")
    form = next(f for f in page.forms.values() if f.action == "/billing/subscription/cancel")
    res = form.submit()
    assert "done=renewal-failed" in res.location
    assert "was not cancelled" in res.follow().text
    assert subscriptions(db)[0].state == SubscriptionState.ACTIVE


def test_amounts_in_minor_units_by_currency():
    from nproxy_pay_stripe.events import amount_from_minor, minor_units

    assert minor_units(Decimal("9.99"), "usd") == 999
    assert minor_units(Decimal("1200"), "JPY") == 1200
    assert minor_units(Decimal("1.234"), "kwd") == 1234
    with pytest.raises(ValueError):
        minor_units(Decimal("9.999"), "usd")
    assert amount_from_minor(999, "usd") == Decimal("9.99")
    assert amount_from_minor(1200, "jpy") == Decimal("1200")


def test_event_json_is_recorded_exactly(stripe_api, stripe_app, fake, db):
    order_id, _sub = subscribed(stripe_app, stripe_api, fake)
    note = next(n for n in notifications(db) if n.order_id == order_id and n.result == "activated")
    assert note.raw["type"] == "checkout.session.completed"
    assert json.dumps(note.raw)  # JSON-serialisable as stored


def test_no_ending_warning_for_a_plan_that_renews_but_one_after_cancelling(
    stripe_api, stripe_app, fake, db, outbox
):
    from nproxy_core.billing.models import BillingCycle
    from nproxy_core.billing.tasks import send_expiry_warnings

    subscribed(stripe_app, stripe_api, fake)
    registry = stripe_app.app.registry

    def ends_in(days: int) -> None:
        with db.begin():
            db.execute(
                sa.update(BillingCycle).values(
                    ends_at=utcnow() + dt.timedelta(days=days),
                    warned_3d_at=None,
                    warned_1d_at=None,
                )
            )

    ends_in(2)
    run_now(registry, send_expiry_warnings)
    assert not [m for m in outbox if "plan ends" in m["subject"]]
    assert stripe_api.post("/api/v1/billing/subscription/cancel", {}).status_int == 200
    ends_in(2)
    assert run_now(registry, send_expiry_warnings) == 1
    assert [m for m in outbox if "plan ends" in m["subject"]]


def test_a_renewal_refunded_before_its_invoice_arrives_never_activates(
    stripe_api, stripe_app, fake, db
):
    _order, sub_id = subscribed(stripe_app, stripe_api, fake)
    [paid_event] = fake.renew(sub_id)
    invoice = paid_event["data"]["object"]
    assert send(stripe_app, fake, fake.refund(invoice["charge"])) == ["unchanged"]
    renewal = payments(db)[-1]
    assert renewal.invoice_id == invoice["id"] and renewal.status == PaymentState.REFUNDED
    assert send(stripe_app, fake, [paid_event]) == ["ignored"]
    assert len(cycles(db)) == 1 and not renewal.needs_review


@pytest.mark.parametrize(
    "order", ["refund-first", "after-subscription-created", "reversed", "reconciled"]
)
def test_a_first_payment_refunded_before_its_checkout_arrives_never_activates(
    stripe_api, stripe_app, fake, db, order
):
    order_id = buy(stripe_api)
    session = session_of(fake, order_id)
    events = fake.complete_checkout(session["id"])
    first_invoice = fake.get(fake.get(fake.get(session["id"])["subscription"])["latest_invoice"])
    refund = fake.refund(first_invoice["charge"])
    deliveries = {
        "refund-first": refund + events,
        "after-subscription-created": events[:1] + refund + events[1:],
        "reversed": list(reversed(events + refund)),
        "reconciled": refund,  # the checkout's webhooks are lost
    }[order]
    send(stripe_app, fake, deliveries + deliveries)  # each twice
    if order == "reconciled":
        run_now(stripe_app.app.registry, reconcile_payments)
    assert cycles(db) == []
    [checkout] = payments(db)  # no renewal was made of the checkout's own invoice
    assert checkout.order_id == order_id and checkout.status == PaymentState.REFUNDED
    assert not checkout.needs_review
    notes = notifications(db)
    assert order == "reconciled" or len(notes) == 2 * len(deliveries)
    assert all(n.payment_id == checkout.id for n in notes if n.status == "refunded")
    assert not [n for n in notes if n.needs_review and n.resolved_at is None]
    assert stripe_api.get("/api/v1/me").json["subscription"]["status"] != "active"
    db.expire_all()
    assert not db.scalars(sa.select(Alert).where(Alert.state == "open")).all()


@pytest.mark.parametrize("seed", [3, 6, 11])
def test_forty_shuffled_deliveries_with_the_first_payment_refunded_give_the_same_cycles(
    stripe_api, stripe_app, fake, db, seed
):
    """The checkout's own money refunded, two renewals paid: the checkout never gives a
    cycle (or gives one ended by the refund), the renewals give two months from about now,
    and nothing waits for an admin, in whatever order Stripe's events come."""
    order_id = buy(stripe_api)
    session = session_of(fake, order_id)
    events = fake.complete_checkout(session["id"])
    sub_id = fake.get(session["id"])["subscription"]
    first_invoice = fake.get(fake.get(sub_id)["latest_invoice"])
    events += fake.renew(sub_id) + fake.renew(sub_id)
    events += fake.refund(first_invoice["charge"])
    send(stripe_app, fake, _forty(events, seed))
    pays = payments(db)
    assert len(pays) == 3
    [checkout] = [p for p in pays if p.order_id == order_id]
    assert checkout.status == PaymentState.REFUNDED and not checkout.needs_review
    assert [p.status for p in pays if p is not checkout] == [PaymentState.FINISHED] * 2
    now = utcnow()
    giving = sorted((c for c in cycles(db) if c.ends_at > max(now, c.starts_at)), key=_start)
    assert len(giving) == 2 and giving[1].starts_at == giving[0].ends_at
    assert giving[0].starts_at <= now
    assert not [n for n in notifications(db) if n.needs_review and n.resolved_at is None]


def _start(cycle: Any) -> dt.datetime:
    return cycle.starts_at


def test_a_pack_refunded_before_its_checkout_arrives_never_grants_it(
    stripe_api, stripe_app, fake, db
):
    from nproxy_core.audit import Actor, Surface
    from nproxy_core.billing.packs import add_pack

    add_pack(
        db,
        "small",
        {"name": "Small", "price": "4.99", "currency": "USD", "units": 100},
        actor=Actor("admin@example.com", Surface.CLI),
    )
    db.commit()
    order_id = buy(stripe_api, pack="small")
    completed = fake.complete_checkout(session_of(fake, order_id)["id"])
    charge = next(o for o in fake.objects.values() if o["object"] == "charge")
    assert send(stripe_app, fake, fake.refund(charge["id"]) + completed) == [
        "refunded",
        "ignored",
    ]
    row = payment(db, order_id)
    assert row.status == PaymentState.REFUNDED and not row.needs_review
    assert stripe_api.get("/api/v1/me").json["packs"] == []


def test_subscription_reconciliation_survives_a_failing_stripe(stripe_api, stripe_app, fake, db):
    from fakes._server import Reply
    from nproxy_core.billing.models import Subscription

    _order, sub_id = subscribed(stripe_app, stripe_api, fake)
    fake.renew(sub_id)  # its webhook lost
    with db.begin():
        db.execute(sa.update(Subscription).values(current_period_end=utcnow()))
    for _ in range(2):  # the SDK tries once more
        fake.fail_next(Reply(503, {"error": {"type": "api_error", "message": "Unavailable"}}))
    counts = run_now(stripe_app.app.registry, reconcile_payments)
    assert counts["failed"] == 1
    assert len(cycles(db)) == 1
    # The next run, with Stripe back, finds the renewal.
    run_now(stripe_app.app.registry, reconcile_payments)
    assert len(cycles(db)) == 2
