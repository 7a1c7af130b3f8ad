"""Starting a free plan (DESIGN 4.12): one cycle of an active free plan for a verified email,
once per the plan's period and never while another plan runs, limited per client IP, never
a payment; the JSON API, the pricing page's button in each state, and the audit row."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa
import webtest
from sqlalchemy.orm import Session

from admin_support import audit_rows
from apiclient import ApiClient
from nproxy_core.accounts.models import User
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import free
from nproxy_core.billing import plans as plan_service
from nproxy_core.billing.models import BillingCycle, Payment, Plan
from nproxy_core.db import create_engine, utcnow
from nproxy_core.errors import ValidationError

ADMIN = Actor("tester", Surface.CLI)
URL = "/api/v1/billing/start-free"


def add_free(db: Any, code: str = "free", **fields: Any) -> Plan:
    values = {
        "name": code.title(),
        "price": "0",
        "currency": "USD",
        "units": 20,
        "period_months": 1,
        "free": True,
        **fields,
    }
    plan = plan_service.add_plan(db, code, values, actor=ADMIN)
    db.commit()
    return plan


def verify(db: Any, user: Any) -> Any:
    db.execute(sa.update(User).where(User.id == user.id).values(email_verified_at=utcnow()))
    db.commit()
    db.expire_all()
    return user


def verified(db: Any, user_factory: Any, email: str | None = None) -> Any:
    return verify(db, user_factory(email))


def cycles_of(db: Any, user: Any) -> list[BillingCycle]:
    db.expire_all()
    return list(db.scalars(sa.select(BillingCycle).where(BillingCycle.user_id == user.id)))


def logged_in(app: webtest.TestApp, email: str) -> ApiClient:
    client = ApiClient(webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"}))
    assert client.login(email).status_int == 200
    return client


# --- the JSON API ------------------------------------------------------------------------------


def test_a_verified_user_starts_the_free_plan_once(app, api, db, user_factory):
    add_free(db, units=25, period_months=1)
    user = verified(db, user_factory, "free@example.com")
    api.login("free@example.com")
    answer = api.post(URL)
    assert answer.status_int == 201, answer.text
    assert set(answer.json) == {"plan", "starts_at", "ends_at", "bucket"}
    assert answer.json["plan"] == "free" and answer.json["bucket"] == 100
    [cycle] = cycles_of(db, user)
    assert cycle.request_limit == 25 and cycle.period_months == 1
    assert cycle.payment_id is None and cycle.grant_reason == free.FREE_GRANT_REASON
    assert db.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0
    me = api.get("/api/v1/me").json
    assert me["subscription"]["status"] == "active"

    again = api.post(URL, {"plan": "free"})
    assert again.status_int == 409
    assert again.json["error"]["code"] == "free_plan_used"
    assert "can start the free plan again from" in again.json["error"]["message"]
    assert len(cycles_of(db, user)) == 1


def test_a_second_free_cycle_waits_for_the_period_window(db, user_factory):
    plan = add_free(db, period_months=1)
    user = verified(db, user_factory)
    start = dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC)
    free.start_free(db, plan, user.id, client_ip="10.0.0.1", now=start)
    db.commit()
    # The cycle ended (the plan's units used up early, or an admin ended it): still one per month.
    db.execute(sa.update(BillingCycle).values(ends_at=start + dt.timedelta(days=3)))
    db.commit()
    with pytest.raises(free.FreePlanUsed) as refused:
        free.start_free(db, plan, user.id, client_ip="10.0.0.1", now=start + dt.timedelta(days=20))
    assert "again from 2026-02-10 12:00 UTC" in refused.value.message
    assert refused.value.status == 409
    db.rollback()
    second = free.start_free(
        db, plan, user.id, client_ip="10.0.0.1", now=dt.datetime(2026, 2, 10, 12, tzinfo=dt.UTC)
    )
    db.commit()
    assert second.starts_at == dt.datetime(2026, 2, 10, 12, tzinfo=dt.UTC)
    assert len(cycles_of(db, user)) == 2


def test_an_unverified_email_is_refused_with_the_way_to_verify(api, db, user_factory):
    add_free(db)
    user = user_factory("unverified@example.com")
    api.login("unverified@example.com")
    answer = api.post(URL)
    assert answer.status_int == 403
    assert answer.json["error"]["code"] == "email_not_verified"
    assert "/verify-email" in answer.json["error"]["message"]
    assert cycles_of(db, user) == []


def test_a_running_paid_plan_is_refused(api, db, user_factory, make_cycle):
    add_free(db)
    user = verified(db, user_factory, "paid@example.com")
    make_cycle(user)
    api.login("paid@example.com")
    answer = api.post(URL)
    assert answer.status_int == 409 and answer.json["error"]["code"] == "plan_active"
    assert len(cycles_of(db, user)) == 1


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"plan": "monthly"}, "'monthly' is not free"),
        ({"plan": "gone"}, "'gone' is no longer offered"),
        ({"plan": "nosuch"}, "no plan 'nosuch'"),
        ({"plan": 5}, "Name a plan"),
    ],
)
def test_a_plan_that_cannot_start_free_is_a_400_naming_it(api, db, user_factory, body, named):
    add_free(db, "gone")
    plan_service.edit_plan(db, "gone", {"active": False}, actor=ADMIN)
    db.commit()
    verified(db, user_factory, "named@example.com")
    api.login("named@example.com")
    answer = api.post(URL, body)
    assert answer.status_int == 400, answer.text
    assert answer.json["error"]["code"] == "validation_error"
    assert named in answer.json["error"]["message"]


def test_without_a_plan_named_there_must_be_exactly_one_free_plan(api, db, user_factory):
    verified(db, user_factory, "none@example.com")
    api.login("none@example.com")
    answer = api.post(URL)
    assert answer.status_int == 400 and "no free plan" in answer.json["error"]["message"]
    add_free(db, "free-a")
    add_free(db, "free-b")
    answer = api.post(URL)
    assert answer.status_int == 400
    assert "'free-a', 'free-b'" in answer.json["error"]["message"]
    assert api.post(URL, {"plan": "free-b"}).status_int == 201


def test_free_plan_resolution_prefers_the_one_public_plan(db):
    add_free(db, "hidden", public=False)
    assert free.free_plan(db).code == "hidden"
    add_free(db, "open")
    assert free.free_plan(db).code == "open"
    with pytest.raises(ValidationError):
        free.free_plan(db, "  ")


def test_the_audit_row_records_the_free_grant(api, db, user_factory):
    add_free(db)
    user = verified(db, user_factory, "audited@example.com")
    api.login("audited@example.com")
    assert api.post(URL, headers={"X-Forwarded-For": "203.0.113.9"}).status_int == 201
    [row] = audit_rows(db, "billing.free_grant")
    assert row.actor == "audited@example.com" and row.actor_user_id == user.id
    assert row.surface == "web" and row.target_type == "user" and row.target_id == str(user.id)
    assert row.after["plan"] == "free" and row.after["payment_id"] is None
    assert row.after["grant_reason"] == free.FREE_GRANT_REASON
    # Not a trusted proxy: the peer's address, not the header's.
    assert row.after["client_ip"] != "203.0.113.9"


def test_the_per_ip_limit_caps_many_accounts_from_one_address(make_app, db, user_factory):
    app = make_app(nproxy__limits__free_grants="3/day", nproxy__trusted_proxies="127.0.0.1")
    add_free(db)
    answers = []
    for n in range(5):
        email = f"farm{n}@example.com"
        verified(db, user_factory, email)
        client = logged_in(app, email)
        answers.append(
            client.post(
                URL,
                extra_environ={"REMOTE_ADDR": "127.0.0.1"},
                headers={"X-Forwarded-For": "198.51.100.7"},
            )
        )
    assert [a.status_int for a in answers] == [201, 201, 201, 429, 429]
    assert answers[3].json["error"]["code"] == "rate_limited"
    assert int(answers[3].headers["Retry-After"]) > 0
    assert db.scalar(sa.select(sa.func.count()).select_from(BillingCycle)) == 3
    # Another address still has room.
    verified(db, user_factory, "elsewhere@example.com")
    other = logged_in(app, "elsewhere@example.com")
    answer = other.post(
        URL, extra_environ={"REMOTE_ADDR": "127.0.0.1"}, headers={"X-Forwarded-For": "198.51.100.8"}
    )
    assert answer.status_int == 201


def test_refusals_before_the_grant_do_not_use_the_ip_limit(make_app, db, user_factory):
    app = make_app(nproxy__limits__free_grants="1/day")
    add_free(db)
    user_factory("waiting@example.com")
    waiting = logged_in(app, "waiting@example.com")
    for _ in range(3):
        assert waiting.post(URL).status_int == 403
    verified(db, user_factory, "ready@example.com")
    assert logged_in(app, "ready@example.com").post(URL).status_int == 201


def test_twenty_clicks_at_once_grant_exactly_one_cycle(base_settings, db, user_factory):
    plan = add_free(db)
    user = verified(db, user_factory)
    # Read here: the threads must not touch the test's own session.
    plan_id, user_id = plan.id, user.id
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()
    # A connection of its own for every click, all open at once.
    clicks = create_engine(base_settings, pool_size=20, max_overflow=0)

    def click() -> None:
        with Session(bind=clicks) as session:
            row = session.get(Plan, plan_id)
            barrier.wait()
            try:
                free.start_free(session, row, user_id, client_ip="192.0.2.1")
                session.commit()
                outcome = "granted"
            except free.FreePlanUsed:
                session.rollback()
                outcome = "refused"
            except Exception as exc:
                session.rollback()
                outcome = type(exc).__name__
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=click) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    clicks.dispose()
    assert sorted(outcomes) == ["granted"] + ["refused"] * 19
    assert len(cycles_of(db, user)) == 1
    assert len(audit_rows(db, "billing.free_grant")) == 1


# --- the pricing page --------------------------------------------------------------------------


def start_free_box(page: webtest.TestResponse) -> Any:
    box = page.html.select_one("#plan-free .start-free")
    assert box is not None, page.text
    return box


def test_pricing_page_button_for_a_logged_out_visitor_leads_to_register(app, db):
    add_free(db)
    page = app.get("/pricing")
    box = start_free_box(page)
    assert box["data-state"] == "anonymous"
    assert box.select_one("a.button")["href"] == "/register"
    assert box.select_one("a.button").text.strip() == "Start free"
    # The free plan is not offered for payment.
    assert "free" not in [
        i.get("value") for i in page.html.select("#checkout-form input[name=plan]")
    ]


def test_pricing_page_for_an_unverified_user_offers_verification(app, api, db, user_factory):
    add_free(db)
    user_factory("wait@example.com")
    api.login("wait@example.com")
    box = start_free_box(app.get("/pricing"))
    assert box["data-state"] == "unverified"
    assert "Verify your email" in box.text
    assert box.select_one("a.button")["href"] == "/verify-email"
    assert box.select_one("form") is None


def test_pricing_page_for_a_verified_user_grants_and_redirects(app, api, db, user_factory):
    add_free(db)
    user = verified(db, user_factory, "go@example.com")
    api.login("go@example.com")
    page = app.get("/pricing")
    assert start_free_box(page)["data-state"] == "verified"
    form = next(f for f in page.forms.values() if f.action == "/billing/start-free")
    answer = form.submit()
    assert answer.status_int == 303
    assert answer.location.endswith("/dashboard?done=free-started")
    dashboard = answer.follow()
    assert "Your free plan has started" in dashboard.text
    assert len(cycles_of(db, user)) == 1
    # A second click: the pricing page again, saying why.
    refused = form.submit(status=409)
    assert refused.html.select_one("#free-error")["data-code"] == "free_plan_used"
    assert len(cycles_of(db, user)) == 1


def test_the_form_without_csrf_is_refused(app, api, db, user_factory):
    add_free(db)
    user = verified(db, user_factory, "csrf@example.com")
    api.login("csrf@example.com")
    app.post("/billing/start-free", {"plan": "free"}, status=403)
    assert api.app.post_json(URL, {}, status=403).json["error"]["code"] == "forbidden"
    assert cycles_of(db, user) == []
