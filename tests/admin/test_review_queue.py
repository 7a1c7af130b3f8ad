"""The payments review queue (DESIGN 4.9, issue 9, issue 11 item 7): every flag reason lands in
the queue; a flagged payment never activates by itself, not even when a clean ``finished``
arrives later; ``activate`` grants exactly one cycle however many admins click at once;
``dismiss`` grants none; and each decision is audited."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
import sqlalchemy as sa
import webtest

from admin_support import audit_rows
from apiclient import ApiClient
from fakes.nowpayments import RawNumber, ipn_payload, sign_ipn
from nproxy_core.billing.models import BillingCycle, Payment, PaymentNotification, PaymentState

WEBHOOK = "/billing/webhooks/nowpayments"
_payment_ids = itertools.count(8100000001)


class Shop:
    """A customer buying with NOWPayments, and the processor's IPNs about their payment."""

    def __init__(self, app: webtest.TestApp, fake: Any, email: str) -> None:
        self.app, self.fake = app, fake
        self.api = ApiClient(webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"}))
        assert self.api.register(email).status_int == 201
        res = self.api.post("/api/v1/billing/checkout", {"processor": "nowpayments"})
        assert res.status_int == 201, res.text
        self.order_id = res.json["payment_id"]
        self.invoice = next(i for i in fake.invoices if i["order_id"] == self.order_id)
        self.payment_id = next(_payment_ids)

    def ipn(self, status: str, **fields: Any) -> str:
        payload = ipn_payload(
            payment_id=fields.pop("payment_id", self.payment_id),
            invoice_id=int(self.invoice["id"]),
            order_id=self.order_id,
            payment_status=status,
            price_amount=RawNumber(self.invoice["price_amount"]),
            price_currency=self.invoice["price_currency"],
        )
        payload.update(fields)
        body, headers = sign_ipn(payload, self.fake.ipn_secret)
        headers.pop("Content-Type")
        res = self.app.post(
            WEBHOOK, body, headers=headers, content_type="application/json", status="*"
        )
        assert res.status_int == 200, res.text
        return res.json["result"]

    def payment(self, db: Any) -> Payment:
        db.expire_all()
        return db.scalar(sa.select(Payment).where(Payment.order_id == self.order_id))

    def subscription(self) -> str:
        return self.api.get("/api/v1/me").json["subscription"]["status"]


@pytest.fixture
def shop(pay_app: webtest.TestApp, nowpayments: Any) -> Any:
    counter = itertools.count(1)
    return lambda: Shop(pay_app, nowpayments, f"buyer{next(counter)}@example.com")


def cycles(db: Any) -> list[BillingCycle]:
    db.expire_all()
    return list(db.scalars(sa.select(BillingCycle).order_by(BillingCycle.id)))


def queue_ids(admin: Any) -> list[int]:
    res = admin.get("/admin/payments?state=review")
    return [int(tr["data-payment"]) for tr in res.html.select("#payment-list tr[data-payment]")]


@pytest.mark.parametrize(
    ("arrange", "reason"),
    [
        (lambda s: s.ipn("finished", price_amount=RawNumber("9.98")), "amount 9.98"),
        (lambda s: s.ipn("finished", price_currency="eur"), "currency EUR"),
        (lambda s: s.ipn("partially_paid", actually_paid=RawNumber("0.0001")), "partially paid"),
        (
            lambda s: (
                s.ipn("waiting"),
                s.ipn("finished", payment_id=next(_payment_ids), parent_payment_id=s.payment_id),
            ),
            "re-deposit",
        ),
    ],
    ids=["amount", "currency", "partial", "re-deposit"],
)
def test_each_flag_reason_lands_in_the_review_queue(pay_admin, shop, db, arrange, reason):
    customer = shop()
    arrange(customer)
    payment = customer.payment(db)
    assert payment.awaiting_review and reason in payment.review_reason
    assert queue_ids(pay_admin) == [payment.id]
    row = pay_admin.get("/admin/payments?state=review").html.select_one(
        f"tr[data-payment='{payment.id}']"
    )
    assert reason in row.get_text()
    assert cycles(db) == []
    assert pay_admin.get("/admin").html.select_one("#review .stat").get_text().strip() == "1"


def test_a_notification_for_an_unknown_order_lands_in_the_queue_and_can_be_dismissed(
    pay_admin, pay_app, nowpayments, db
):
    payload = ipn_payload(
        payment_id=next(_payment_ids), order_id="nobody-ordered-this", payment_status="finished"
    )
    body, headers = sign_ipn(payload, nowpayments.ipn_secret)
    headers.pop("Content-Type")
    pay_app.post(WEBHOOK, body, headers=headers, content_type="application/json")
    [note] = db.scalars(sa.select(PaymentNotification)).all()

    page = pay_admin.get("/admin/payments?state=review")
    row = page.html.select_one(f"#unmatched tr[data-notification='{note.id}']")
    assert "nobody-ordered-this" in row.get_text()

    url = f"/admin/payments/notifications/{note.id}/dismiss"
    _, ok, errors = pay_admin.act(url, {"note": ""})
    assert errors == ["a note is required: say why"] and ok == []
    _, ok, errors = pay_admin.act(url, {"note": "test payment from our own wallet"})
    assert ok == [f"Notification {note.id} dismissed."]
    assert (
        pay_admin.get("/admin/payments?state=review").html.select_one(
            "#unmatched tr[data-notification]"
        )
        is None
    )
    [entry] = audit_rows(db, "payment_notification.dismiss")
    assert entry.after["resolution_note"] == "test payment from our own wallet"
    _, _, errors = pay_admin.act(url, {"note": "again"})
    assert errors and "already dismissed" in errors[0]


@pytest.mark.parametrize(
    "flag",
    [
        lambda s: s.ipn("partially_paid", actually_paid=RawNumber("0.0001")),
        lambda s: s.ipn("confirming", price_currency="eur"),
        lambda s: (
            s.ipn("waiting"),
            s.ipn("confirming", payment_id=next(_payment_ids), parent_payment_id=s.payment_id),
        ),
    ],
    ids=[
        "partial-then-finished",
        "currency-on-confirming-then-finished",
        "re-deposit-then-finished",
    ],
)
def test_a_later_clean_finished_does_not_activate_a_flagged_payment(shop, db, flag):
    customer = shop()
    flag(customer)
    assert customer.payment(db).awaiting_review
    assert customer.ipn("finished") == "review"
    payment = customer.payment(db)
    assert payment.status == PaymentState.FINISHED
    assert payment.awaiting_review and payment.cycle is None
    assert cycles(db) == []
    assert customer.subscription() == "none"


def test_a_clean_payment_still_activates_by_itself(shop, db):
    customer = shop()
    assert customer.ipn("confirming") == "updated"
    assert customer.ipn("finished") == "activated"
    assert len(cycles(db)) == 1 and not customer.payment(db).needs_review


def test_activate_grants_the_cycle_once_with_a_note_and_an_audit_row(pay_admin, shop, db):
    customer = shop()
    customer.ipn("partially_paid", actually_paid=RawNumber("0.0001"))
    payment = customer.payment(db)
    url = f"/admin/payments/{payment.id}/resolve"

    _, _, errors = pay_admin.act(url, {"decision": "activate", "note": " "})
    assert errors == ["a note is required: say why"]
    _, _, errors = pay_admin.act(url, {"decision": "approve", "note": "ok"})
    assert errors == ["decision must be activate or dismiss"]
    assert cycles(db) == [] and audit_rows(db, "payment.resolve") == []

    _, ok, errors = pay_admin.act(
        url, {"decision": "activate", "note": "rest paid by bank transfer"}
    )
    assert errors == [] and ok[0].startswith(f"Payment {payment.id} activated")
    [cycle] = cycles(db)
    assert cycle.payment_id == payment.id and cycle.user_id == payment.user_id
    assert customer.subscription() == "active"
    payment = customer.payment(db)
    assert not payment.awaiting_review and payment.resolution == "activated"
    assert payment.resolved_by == "boss@example.com"
    [entry] = audit_rows(db, "payment.resolve")
    assert entry.before["resolution"] is None and entry.after["resolution"] == "activated"
    assert entry.after["cycle_id"] == cycle.id and entry.surface == "web"

    # Resolving again is refused and changes nothing; so is a later clean finished.
    _, _, errors = pay_admin.act(url, {"decision": "activate", "note": "again"})
    assert errors and "already resolved" in errors[0]
    assert customer.ipn("finished") == "updated"
    assert len(cycles(db)) == 1 and len(audit_rows(db, "payment.resolve")) == 1
    assert queue_ids(pay_admin) == []


def test_dismiss_grants_no_cycle(pay_admin, shop, db):
    customer = shop()
    customer.ipn("finished", price_amount=RawNumber("1.00"))
    payment = customer.payment(db)
    _, ok, _ = pay_admin.act(
        f"/admin/payments/{payment.id}/resolve", {"decision": "dismiss", "note": "underpaid"}
    )
    assert ok == [f"Payment {payment.id} dismissed; nothing was granted."]
    assert cycles(db) == [] and customer.subscription() == "none"
    assert customer.payment(db).resolution == "dismissed"
    assert queue_ids(pay_admin) == []
    assert customer.api.get("/api/v1/billing/payments").json["payments"][0]["under_review"] is False


def test_a_new_problem_after_a_dismissal_reopens_the_review_but_a_replay_does_not(
    pay_admin, shop, db
):
    customer = shop()
    customer.ipn("partially_paid", actually_paid=RawNumber("0.0001"))
    payment = customer.payment(db)
    pay_admin.act(f"/admin/payments/{payment.id}/resolve", {"decision": "dismiss", "note": "wait"})
    # The same notification again is not news.
    customer.ipn("partially_paid", actually_paid=RawNumber("0.0001"))
    assert not customer.payment(db).awaiting_review
    # The customer paid the rest: a finished arrives, and an admin must look again.
    assert customer.ipn("finished") == "review"
    payment = customer.payment(db)
    assert payment.awaiting_review and payment.resolution is None and cycles(db) == []
    assert queue_ids(pay_admin) == [payment.id]
    assert [e.actor for e in audit_rows(db, "payment.review_reopened")] == ["system"]
    _, ok, _ = pay_admin.act(
        f"/admin/payments/{payment.id}/resolve", {"decision": "activate", "note": "paid in full"}
    )
    assert ok and len(cycles(db)) == 1


def test_a_payment_never_flagged_cannot_be_resolved(pay_admin, shop, db):
    customer = shop()
    customer.ipn("waiting")
    payment = customer.payment(db)
    _, _, errors = pay_admin.act(
        f"/admin/payments/{payment.id}/resolve", {"decision": "activate", "note": "why not"}
    )
    assert errors == [f"payment {payment.id} is not flagged for review"]
    assert cycles(db) == []


def resolve_at_once(admins: list[Any], payment_id: int) -> list[str]:
    """Each admin posts ``activate`` for the payment at the same moment; their flash messages."""
    tokens = [a.csrf() for a in admins]
    barrier = threading.Barrier(len(admins))
    answers: list[str] = []

    def resolve(browser: Any, token: str) -> None:
        barrier.wait()
        res = browser.app.post(
            f"/admin/payments/{payment_id}/resolve",
            {"decision": "activate", "note": "paid", "csrf_token": token},
            status="*",
        )
        answers.append(browser.app.get(res.location).html.select_one("p.alert").get_text())

    threads = [
        threading.Thread(target=resolve, args=pair) for pair in zip(admins, tokens, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return answers


def test_activate_grants_exactly_one_cycle_when_two_admins_click_at_once(
    pay_app, shop, db, user_factory, admin_user
):
    """Threads over real HTTP requests to the app on real PostgreSQL: both admins' resolve
    requests race; one activates, the other is told it was already resolved."""
    from admin_support import AdminBrowser

    other = user_factory("second-admin@example.com", admin=True)
    for _ in range(3):
        customer = shop()
        customer.ipn("partially_paid", actually_paid=RawNumber("0.0001"))
        payment = customer.payment(db)
        admins = [AdminBrowser(pay_app).login(u.email) for u in (admin_user, other)]
        answers = resolve_at_once(admins, payment.id)
        db.expire_all()
        got = db.scalars(sa.select(BillingCycle).where(BillingCycle.payment_id == payment.id)).all()
        assert len(got) == 1
        assert sorted(a.startswith(f"Payment {payment.id} activated") for a in answers) == [
            False,
            True,
        ], answers
        assert any("already resolved" in a for a in answers)
    assert len(audit_rows(db, "payment.resolve")) == 3


def test_one_payment_shows_all_its_notifications(pay_admin, shop, db):
    customer = shop()
    customer.ipn("waiting")
    customer.ipn("confirming")
    customer.ipn("partially_paid", actually_paid=RawNumber("0.0001"))
    payment = customer.payment(db)
    page = pay_admin.get(f"/admin/payments/{payment.id}")
    rows = page.html.select("#notifications tr[data-notification]")
    # Checkout left it waiting already: the first notification changes nothing.
    assert [r["data-result"] for r in rows] == ["unchanged", "updated", "review"]
    assert "partially paid" in page.html.select_one("#review").get_text()
    assert page.html.select_one("form#resolve") is not None
