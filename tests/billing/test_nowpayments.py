"""NOWPayments checkout and IPNs through the real app, a real database and the fake API."""

from __future__ import annotations

import itertools
import json
import threading
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from fakes.nowpayments import RawNumber, ipn_payload, send_ipn, sign_ipn
from nproxy_core.audit.models import AuditEntry
from nproxy_core.billing.models import (
    BillingCycle,
    NotificationSource,
    Payment,
    PaymentNotification,
    PaymentState,
)
from nproxy_core.billing.tasks import reconcile_payments
from nproxy_core.db import utcnow
from nproxy_core.tasks import run_now

WEBHOOK = "/billing/webhooks/nowpayments"
_payment_ids = itertools.count(7100000001)


def buy(api: Any, email: str = "buyer@example.com") -> str:
    """Register, check out with NOWPayments; the order id."""
    assert api.register(email).status_int == 201
    res = api.post("/api/v1/billing/checkout", {"processor": "nowpayments"})
    assert res.status_int == 201, res.text
    return res.json["payment_id"]


def invoice_for(fake: Any, order_id: str) -> dict[str, Any]:
    return next(i for i in fake.invoices if i["order_id"] == order_id)


def ipn(fake: Any, order_id: str, status: str, payment_id: int, **fields: Any) -> dict[str, Any]:
    invoice = invoice_for(fake, order_id)
    return ipn_payload(
        payment_id=payment_id,
        invoice_id=int(invoice["id"]),
        order_id=order_id,
        payment_status=status,
        price_amount=RawNumber(invoice["price_amount"]),
        price_currency=invoice["price_currency"],
        **fields,
    )


def post_ipn(app: Any, payload: Any, secret: str, **kw: Any) -> Any:
    body, headers = sign_ipn(payload, secret, **kw)
    headers.pop("Content-Type")
    return app.post(WEBHOOK, body, headers=headers, content_type="application/json", status="*")


def payment(db: Any, order_id: str) -> Payment:
    db.expire_all()
    return db.scalar(sa.select(Payment).where(Payment.order_id == order_id))


def cycles(db: Any) -> list[BillingCycle]:
    db.expire_all()
    return db.scalars(sa.select(BillingCycle).order_by(BillingCycle.id)).all()


def notifications(db: Any) -> list[PaymentNotification]:
    db.expire_all()
    return db.scalars(sa.select(PaymentNotification).order_by(PaymentNotification.id)).all()


def subscription(api: Any) -> dict[str, Any]:
    return api.get("/api/v1/me").json["subscription"]


# --- checkout --------------------------------------------------------------------------------


def test_checkout_creates_the_payment_then_the_invoice(np_api, fake, db):
    order_id = buy(np_api)
    row = payment(db, order_id)
    invoice = invoice_for(fake, order_id)
    assert len(order_id) >= 24
    assert row.status == PaymentState.WAITING
    assert (row.amount, row.currency, row.processor) == (Decimal("9.99"), "USD", "nowpayments")
    assert row.invoice_id == invoice["id"]
    assert row.checkout_url == invoice["invoice_url"]
    sent = next(r for r in fake.requests if r.path == "/v1/invoice").json()
    assert sent["price_amount"] == Decimal("9.99")
    assert sent["ipn_callback_url"] == "http://localhost/billing/webhooks/nowpayments"
    assert sent["success_url"] == f"http://localhost/billing/payments/{order_id}/success"
    assert sent["cancel_url"] == f"http://localhost/billing/payments/{order_id}/cancel"
    listed = np_api.get("/api/v1/billing/payments").json["payments"]
    assert [(p["id"], p["status"], p["amount"], p["currency"]) for p in listed] == [
        (order_id, "waiting", "9.99", "USD")
    ]


def test_checkout_form_redirects_to_the_hosted_invoice(np_api, np_app, fake):
    np_api.register("form@example.com")
    page = np_app.get("/pricing")
    form = page.forms["checkout-form"]
    form["processor"] = "nowpayments"
    res = form.submit()
    assert res.status_int == 303
    assert res.location == fake.invoices[0]["invoice_url"]


@pytest.mark.parametrize(
    "body", [{"processor": "bitcoin-by-post"}, {"processor": "nanobanana"}, {}, {"processor": 3}]
)
def test_checkout_with_an_unknown_or_missing_processor_is_refused(np_api, db, fake, body):
    np_api.register("x@example.com")
    res = np_api.post("/api/v1/billing/checkout", body)
    assert res.status_int == 400
    assert res.json["error"]["code"] == "validation_error"
    assert res.json["error"]["fields"] == {"processor": res.json["error"]["fields"]["processor"]}
    assert db.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0
    assert fake.invoices == []


def test_checkout_needs_login(np_api, db):
    res = np_api.post("/api/v1/billing/checkout", {"processor": "nowpayments"})
    assert res.status_int == 401
    assert db.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0


def test_processor_failure_answers_502_and_keeps_the_payment_as_failed(np_api, fake, db):
    np_api.register("x@example.com")
    fake.fail_next(500)
    res = np_api.post("/api/v1/billing/checkout", {"processor": "nowpayments"})
    assert res.status_int == 502
    assert res.json["error"]["code"] == "payment_unavailable"
    assert fake.api_key not in res.text
    row = db.scalar(sa.select(Payment))
    assert row.status == PaymentState.FAILED and row.checkout_url is None


# --- IPNs ------------------------------------------------------------------------------------


def test_happy_path_waiting_confirming_finished(np_api, np_app, fake, db):
    order_id = buy(np_api)
    pid = next(_payment_ids)
    for status in ("waiting", "confirming"):
        res = post_ipn(np_app, ipn(fake, order_id, status, pid), fake.ipn_secret)
        assert res.status_int == 200
        assert cycles(db) == []
        assert subscription(np_api)["status"] == "none"
    assert payment(db, order_id).status == PaymentState.CONFIRMING
    assert payment(db, order_id).processor_payment_id == str(pid)

    res = post_ipn(np_app, ipn(fake, order_id, "finished", pid), fake.ipn_secret)
    assert res.status_int == 200 and res.json["result"] == "activated"
    row = payment(db, order_id)
    assert row.status == PaymentState.FINISHED and not row.needs_review
    [cycle] = cycles(db)
    assert cycle.payment_id == row.id and cycle.request_limit == 300
    assert subscription(np_api)["status"] == "active"
    assert np_api.get("/api/v1/me").json["quota"]["bucket"] == 100
    recorded = notifications(db)
    assert [(n.status, n.result, n.source) for n in recorded] == [
        ("waiting", "unchanged", NotificationSource.WEBHOOK),
        ("confirming", "updated", NotificationSource.WEBHOOK),
        ("finished", "activated", NotificationSource.WEBHOOK),
    ]
    assert recorded[-1].raw["price_amount"] == "9.99"
    assert all(n.signature_valid for n in recorded)


def test_the_fake_paying_its_invoice_over_real_http_activates(
    make_app, np_settings, live_server, fake, db
):
    app = make_app(**np_settings, nproxy__public_url=live_server.url)
    live_server.start(app.app)
    from apiclient import ApiClient

    order_id = buy(ApiClient(app))
    _, answer = fake.pay_invoice(invoice_for(fake, order_id)["id"], "finished")
    assert answer.status == 200
    assert json.loads(answer.body)["result"] == "activated"
    assert len(cycles(db)) == 1


def test_50_concurrent_duplicate_finished_ipns_activate_one_cycle(
    np_app, np_api, live_server, fake, db
):
    live_server.start(np_app.app)
    order_id = buy(np_api)
    payload = ipn(fake, order_id, "finished", next(_payment_ids))
    barrier = threading.Barrier(50)
    answers: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        answer = send_ipn(live_server.url + WEBHOOK, payload, fake.ipn_secret, timeout=60)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status for a in answers] == [200] * 50, [a.body for a in answers if a.status != 200]
    results = sorted(json.loads(a.body)["result"] for a in answers)
    assert results == ["activated"] + ["unchanged"] * 49
    assert len(cycles(db)) == 1
    assert len(notifications(db)) == 50


def test_out_of_order_finished_first_then_waiting_changes_nothing(np_api, np_app, fake, db):
    order_id = buy(np_api)
    pid = next(_payment_ids)
    assert post_ipn(np_app, ipn(fake, order_id, "finished", pid), fake.ipn_secret).status_int == 200
    [cycle] = cycles(db)
    before = (cycle.starts_at, cycle.ends_at)
    for status in ("waiting", "confirming", "partially_paid", "expired", "failed"):
        res = post_ipn(np_app, ipn(fake, order_id, status, pid), fake.ipn_secret)
        assert res.status_int == 200 and res.json["result"] == "ignored", status
    row = payment(db, order_id)
    assert row.status == PaymentState.FINISHED and not row.needs_review
    [cycle] = cycles(db)
    assert (cycle.starts_at, cycle.ends_at) == before


@pytest.mark.parametrize(
    "kw",
    [
        {"signature": "0" * 128},
        {"sign": False},
        {"signature": "not hex at all"},
    ],
    ids=["forged", "unsigned", "garbage"],
)
def test_forged_or_unsigned_ipn_gets_4xx_and_changes_nothing(np_api, np_app, fake, db, kw):
    order_id = buy(np_api)
    res = post_ipn(np_app, ipn(fake, order_id, "finished", next(_payment_ids)), "", **kw)
    assert 400 <= res.status_int < 500
    assert res.json["error"]["code"] == "validation_error"
    assert fake.ipn_secret not in res.text
    assert payment(db, order_id).status == PaymentState.WAITING
    assert cycles(db) == [] and notifications(db) == []


def test_ipn_signed_with_another_secret_is_refused(np_api, np_app, fake, db):
    order_id = buy(np_api)
    res = post_ipn(np_app, ipn(fake, order_id, "finished", next(_payment_ids)), "wrong secret")
    assert res.status_int == 400
    assert cycles(db) == [] and notifications(db) == []


def test_a_tampered_body_with_the_old_signature_is_refused(np_api, np_app, fake, db):
    order_id = buy(np_api)
    payload = ipn(fake, order_id, "waiting", next(_payment_ids))
    body, headers = sign_ipn(payload, fake.ipn_secret)
    tampered = body.replace(b'"waiting"', b'"finished"')
    res = np_app.post(
        WEBHOOK,
        tampered,
        headers={"x-nowpayments-sig": headers["x-nowpayments-sig"]},
        content_type="application/json",
        status="*",
    )
    assert res.status_int == 400
    assert cycles(db) == [] and notifications(db) == []


def test_malformed_json_and_unknown_processor(np_app, db):
    res = np_app.post(
        WEBHOOK,
        b"{oops",
        headers={"x-nowpayments-sig": "ab"},
        content_type="application/json",
        status="*",
    )
    assert res.status_int == 400 and res.json["error"]["code"] == "validation_error"
    res = np_app.post("/billing/webhooks/paypal", b"{}", status="*")
    assert res.status_int == 404 and res.json["error"]["code"] == "not_found"
    assert notifications(db) == []


def test_replayed_old_ipns_activate_nothing_more(np_api, np_app, fake, db):
    order_id = buy(np_api)
    pid = next(_payment_ids)
    waiting = sign_ipn(ipn(fake, order_id, "waiting", pid), fake.ipn_secret)
    finished = sign_ipn(ipn(fake, order_id, "finished", pid), fake.ipn_secret)

    def replay(signed: tuple[bytes, dict[str, str]]) -> Any:
        body, headers = signed
        return np_app.post(
            WEBHOOK,
            body,
            headers={"x-nowpayments-sig": headers["x-nowpayments-sig"]},
            content_type="application/json",
            status="*",
        )

    assert replay(waiting).json["result"] == "unchanged"
    assert replay(finished).json["result"] == "activated"
    assert replay(waiting).json["result"] == "ignored"
    assert replay(finished).json["result"] == "unchanged"
    assert len(cycles(db)) == 1
    assert payment(db, order_id).status == PaymentState.FINISHED


def test_partial_payment_goes_to_review_and_never_activates(np_api, np_app, fake, db):
    order_id = buy(np_api)
    pid = next(_payment_ids)
    res = post_ipn(
        np_app,
        ipn(fake, order_id, "partially_paid", pid, actually_paid=RawNumber("0.0001")),
        fake.ipn_secret,
    )
    assert res.status_int == 200 and res.json["result"] == "review"
    row = payment(db, order_id)
    assert row.status == PaymentState.PARTIALLY_PAID
    assert row.needs_review and "partially paid" in row.review_reason
    assert cycles(db) == []
    assert notifications(db)[-1].needs_review
    assert subscription(np_api)["status"] == "none"
    listed = np_api.get("/api/v1/billing/payments").json["payments"]
    assert listed[0]["status"] == "partially_paid" and listed[0]["under_review"] is True


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"price_amount": RawNumber("9.98")}, "amount"),
        ({"price_amount": "19.99"}, "amount"),
        ({"price_amount": RawNumber("9.9900000000000002131628")}, "amount"),
        ({"price_currency": "eur"}, "currency"),
        ({"invoice_id": 1}, "invoice"),
    ],
    ids=["amount", "amount-string", "amount-float-digits", "currency", "invoice"],
)
def test_mismatched_finished_payment_goes_to_review(np_api, np_app, fake, db, fields, reason):
    order_id = buy(np_api)
    payload = ipn(fake, order_id, "finished", next(_payment_ids))
    payload.update(fields)
    res = post_ipn(np_app, payload, fake.ipn_secret)
    assert res.status_int == 200 and res.json["result"] == "review"
    row = payment(db, order_id)
    assert row.needs_review and reason in row.review_reason
    assert cycles(db) == []
    assert subscription(np_api)["status"] == "none"


@pytest.mark.parametrize(
    "amount",
    [
        "9.99",
        RawNumber("9.99"),
        RawNumber("9.990"),
        RawNumber("9.9900000000000000000000"),
        RawNumber("999e-2"),
    ],
    ids=["string", "number", "trailing-zero", "many-digits", "exponent"],
)
def test_amount_as_string_or_number_with_many_digits_activates(np_api, np_app, fake, db, amount):
    order_id = buy(np_api)
    payload = ipn(fake, order_id, "finished", next(_payment_ids))
    payload["price_amount"] = amount
    payload["price_currency"] = "USD"  # currency compared case-insensitively
    res = post_ipn(np_app, payload, fake.ipn_secret)
    assert res.json["result"] == "activated"
    assert len(cycles(db)) == 1


def test_float_valued_fields_elsewhere_keep_the_signature_valid(np_api, np_app, fake, db):
    # A hand-written body: floats with many digits must hash exactly as sent.
    order_id = buy(np_api)
    invoice = invoice_for(fake, order_id)
    body = (
        f'{{"payment_id":{next(_payment_ids)},"payment_status":"finished",'
        f'"order_id":"{order_id}","invoice_id":{invoice["id"]},'
        '"price_amount":9.990000000000000000,"price_currency":"usd",'
        '"pay_amount":0.000123456789012345678901,"actually_paid":1.10000000000000008882,'
        '"outcome_amount":1e-7,"parent_payment_id":null}'
    )
    res = post_ipn(np_app, body, fake.ipn_secret)
    assert res.status_int == 200 and res.json["result"] == "activated"
    assert notifications(db)[0].raw["pay_amount"] == "0.000123456789012345678901"


def test_unknown_order_is_recorded_for_review(np_app, fake, db):
    payload = ipn_payload(
        payment_id=next(_payment_ids), order_id="no-such-order", payment_status="finished"
    )
    res = post_ipn(np_app, payload, fake.ipn_secret)
    assert res.status_int == 200 and res.json["result"] == "unknown_order"
    [note] = notifications(db)
    assert note.payment_id is None and note.needs_review and note.order_id == "no-such-order"
    assert cycles(db) == []


def test_redeposit_with_parent_payment_id_goes_to_review(np_api, np_app, fake, db):
    order_id = buy(np_api)
    first = next(_payment_ids)
    assert (
        post_ipn(np_app, ipn(fake, order_id, "waiting", first), fake.ipn_secret).status_int == 200
    )
    payload = ipn(fake, order_id, "finished", next(_payment_ids), parent_payment_id=first)
    res = post_ipn(np_app, payload, fake.ipn_secret)
    assert res.status_int == 200 and res.json["result"] == "review"
    row = payment(db, order_id)
    assert row.needs_review and "re-deposit" in row.review_reason
    assert row.status == PaymentState.WAITING
    assert cycles(db) == []


def test_refund_after_activation_ends_the_cycle_and_is_audited(np_api, np_app, fake, db):
    order_id = buy(np_api)
    pid = next(_payment_ids)
    post_ipn(np_app, ipn(fake, order_id, "finished", pid), fake.ipn_secret)
    assert subscription(np_api)["status"] == "active"
    [cycle] = cycles(db)
    original_end = cycle.ends_at

    before = utcnow()
    res = post_ipn(np_app, ipn(fake, order_id, "refunded", pid), fake.ipn_secret)
    after = utcnow()
    assert res.json["result"] == "refunded"
    [cycle] = cycles(db)
    assert before <= cycle.ends_at <= after < original_end
    assert payment(db, order_id).status == PaymentState.REFUNDED
    assert subscription(np_api)["status"] == "expired"
    audit = db.scalar(sa.select(AuditEntry))
    assert (audit.actor, audit.surface, audit.action) == (
        "system",
        "system",
        "billing.cycle_ended_by_refund",
    )
    assert (audit.target_type, audit.target_id) == ("billing_cycle", str(cycle.id))
    assert audit.before["ends_at"] != audit.after["ends_at"]

    # A replayed "finished" cannot bring the cycle back.
    res = post_ipn(np_app, ipn(fake, order_id, "finished", pid), fake.ipn_secret)
    assert res.json["result"] == "ignored"
    assert len(cycles(db)) == 1 and subscription(np_api)["status"] == "expired"


def test_refund_of_an_unpaid_payment_goes_to_review(np_api, np_app, fake, db):
    order_id = buy(np_api)
    res = post_ipn(np_app, ipn(fake, order_id, "refunded", next(_payment_ids)), fake.ipn_secret)
    assert res.json["result"] == "review"
    row = payment(db, order_id)
    assert row.status == PaymentState.WAITING and row.needs_review


def test_lost_ipn_is_recovered_by_reconciliation(np_api, np_app, fake, db):
    order_id = buy(np_api)
    pid = next(_payment_ids)
    post_ipn(np_app, ipn(fake, order_id, "waiting", pid), fake.ipn_secret)
    # The processor finishes the payment; its IPN never arrives.
    fields = ipn(fake, order_id, "finished", pid)
    del fields["payment_id"]
    fake.set_payment(pid, **fields)
    registry = np_app.app.registry
    counts = run_now(registry, reconcile_payments)
    assert counts["activated"] == 1
    assert len(cycles(db)) == 1
    assert payment(db, order_id).status == PaymentState.FINISHED
    assert notifications(db)[-1].source == NotificationSource.RECONCILIATION
    assert any(r.path == f"/v1/payment/{pid}" for r in fake.requests)
    # Nothing open is left to ask about.
    assert run_now(registry, reconcile_payments) == {"checked": 0, "failed": 0}


def test_reconciliation_survives_a_failing_processor(np_api, np_app, fake, db):
    order_id = buy(np_api)
    pid = next(_payment_ids)
    post_ipn(np_app, ipn(fake, order_id, "waiting", pid), fake.ipn_secret)
    fake.fail_next(503)
    counts = run_now(np_app.app.registry, reconcile_payments)
    assert counts == {"checked": 0, "failed": 1}
    assert payment(db, order_id).status == PaymentState.WAITING
    assert cycles(db) == []
