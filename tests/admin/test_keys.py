"""Keys and proxies in the admin (DESIGN 4.5, 4.7): add (the secret entered once, never shown
again), edit, restore, disable and test keys; add, enable, disable and test proxies; health
numbers per key. Every action is audited, and a test never puts a key back in service."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import alerts, audit_rows
from fakes.proxies import free_port, http_proxy
from nproxy_core.audit import Actor, Surface
from nproxy_core.db import utcnow
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.keypool.models import (
    KEY_TEST_REFERENCE,
    AttemptOutcome,
    AttemptPath,
    KeyAttempt,
    KeyState,
    ProviderKey,
    Proxy,
)
from nproxy_core.wiring import find_service

SECRET = "AIzaSyADMINtestADMINtestADMINtest0x9Q2"


def add(admin: Any, secret: str = SECRET, **fields: Any) -> tuple[list[str], list[str]]:
    _, ok, errors = admin.act("/admin/keys", {"provider": "nanobanana", "secret": secret, **fields})
    return ok, errors


def only_key(db: Any) -> ProviderKey:
    db.expire_all()
    [key] = db.scalars(sa.select(ProviderKey)).all()
    return key


def run_key_test(admin: Any, key_id: int, **fields: str) -> tuple[list[str], list[str], list[str]]:
    """Test a key from its page: the flash messages (success, info, error) it answers with."""
    res = admin.post(f"/admin/keys/{key_id}/test", fields)
    assert res.status_int == 303, res.text[:500]
    page = admin.get(res.location)
    return alerts(page, "success"), alerts(page, "info"), alerts(page, "error")


def attempts(db: Any) -> list[KeyAttempt]:
    db.expire_all()
    return list(db.scalars(sa.select(KeyAttempt).order_by(KeyAttempt.id)))


def test_adding_a_key_stores_it_encrypted_and_never_shows_the_secret_again(pool_admin, db):
    ok, errors = add(pool_admin, label="main", project="gcp-project-1", billing_group="acme")
    assert errors == [] and ok == ["Added nanobanana key 'main' (#1) (AIza…x9Q2)."]
    key = only_key(db)
    assert (key.label, key.project, key.billing_group) == ("main", "gcp-project-1", "acme")
    assert SECRET not in key.secret_encrypted and key.state == KeyState.ACTIVE
    for url in ("/admin/keys", f"/admin/keys/{key.id}", "/admin/audit", "/admin"):
        page = pool_admin.get(url)
        assert SECRET not in page.text and SECRET[4:-4] not in page.text
    assert "AIza…x9Q2" in pool_admin.get("/admin/keys").text
    [entry] = audit_rows(db, "key.add")
    assert SECRET not in str(entry.after) and entry.after["project"] == "gcp-project-1"
    assert entry.surface == "web" and entry.actor == "boss@example.com"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"secret": ""}, "the key secret is empty"),
        ({"secret": "has spaces in it"}, "the key secret contains spaces"),
        ({"provider": "openai"}, "provider 'openai' is not enabled"),
        ({"project": "p" * 101}, "project is longer than 100 characters"),
        ({"proxy_id": "9999"}, "no proxy with id 9999"),
        ({"proxy_id": "x"}, "proxy must be a number"),
    ],
)
def test_a_refused_key_is_not_added_and_the_reason_is_shown(pool_admin, db, fields, message):
    _, ok, errors = pool_admin.act(
        "/admin/keys", {"provider": "nanobanana", "secret": SECRET, **fields}
    )
    assert ok == [] and len(errors) == 1 and message in errors[0]
    assert db.scalars(sa.select(ProviderKey)).all() == [] and audit_rows(db) == []


def test_the_same_secret_cannot_be_added_twice(pool_admin, db):
    add(pool_admin)
    ok, errors = add(pool_admin)
    assert ok == [] and errors == ["this nanobanana key is already in the pool (key 1)"]
    assert len(audit_rows(db, "key.add")) == 1


def test_editing_a_key_changes_label_project_group_and_proxy_with_before_and_after(pool_admin, db):
    add(pool_admin, label="old", project="p1")
    pool_admin.act("/admin/proxies", {"url": "http://u:pw@127.0.0.1:3128", "label": "eu"})
    key, proxy = only_key(db), db.scalars(sa.select(Proxy)).one()
    _, ok, _ = pool_admin.act(
        f"/admin/keys/{key.id}/edit",
        {"label": "new", "project": "p2", "billing_group": "g", "proxy_id": str(proxy.id)},
    )
    assert ok == [f"Key 'new' (#{key.id}) saved."]
    key = only_key(db)
    assert (key.label, key.project, key.billing_group, key.proxy_id) == ("new", "p2", "g", proxy.id)
    [entry] = audit_rows(db, "key.edit")
    assert (entry.before["label"], entry.after["label"]) == ("old", "new")
    assert (entry.before["project"], entry.after["project"]) == ("p1", "p2")
    assert entry.after["proxy"] == "http://u:***@127.0.0.1:3128"

    _, ok, errors = pool_admin.act(
        f"/admin/keys/{key.id}/edit",
        {"label": "new", "project": "p2", "billing_group": "g", "proxy_id": str(proxy.id)},
    )
    assert errors == [f"key 'new' (#{key.id}) already has these settings; nothing changed"]
    _, ok, _ = pool_admin.act(
        f"/admin/keys/{key.id}/edit", {"label": "new", "project": "", "billing_group": "g"}
    )
    key = only_key(db)
    assert key.project is None and key.proxy_id is None
    assert len(audit_rows(db, "key.edit")) == 2


def test_restore_and_disable_move_the_key_and_refuse_what_is_already_so(pool_admin, db):
    add(pool_admin)
    key = only_key(db)
    _, _, errors = pool_admin.act(f"/admin/keys/{key.id}/restore")
    assert errors == [f"key #{key.id} is already active"]
    _, ok, _ = pool_admin.act(f"/admin/keys/{key.id}/disable")
    assert ok == [f"Key #{key.id} is disabled."] and only_key(db).state == KeyState.DISABLED
    _, _, errors = pool_admin.act(f"/admin/keys/{key.id}/disable")
    assert errors == [f"key #{key.id} is already disabled"]
    _, ok, _ = pool_admin.act(f"/admin/keys/{key.id}/restore")
    assert ok == [f"Key #{key.id} is back in service."] and only_key(db).state == KeyState.ACTIVE
    assert [e.action for e in audit_rows(db)] == ["key.add", "key.disable", "key.restore"]


def test_a_free_key_check_asks_gemini_for_the_model_with_the_key_and_records_an_attempt(
    pool_admin, db, gemini
):
    add(pool_admin)
    key = only_key(db)
    gemini.clear()
    ok, info, errors = run_key_test(pool_admin, key.id)
    assert errors == [] and ok == [] and len(info) == 1
    assert info[0].startswith(
        "Key accepted; this does not prove it can generate images. "
        f"Key #{key.id}, free check over direct (HTTP 200, "
    )
    assert "Nano Banana (gemini-2.5-flash-image) is available to this key" in info[0]
    assert info[0].endswith("State: active.")
    [request] = gemini.requests
    assert (request.method, request.path) == ("GET", "/v1beta/models/gemini-2.5-flash-image")
    assert request.headers["x-goog-api-key"] == SECRET
    [attempt] = attempts(db)
    assert attempt.reference == KEY_TEST_REFERENCE and attempt.outcome == AttemptOutcome.SUCCESS
    assert attempt.http_status == 200 and attempt.path == AttemptPath.DIRECT
    assert attempt.image_index is None
    [entry] = audit_rows(db, "key.test")
    assert entry.after["test"]["outcome"] == "success" and entry.after["test"]["kind"] == "check"


@pytest.mark.parametrize(
    ("behaviour", "outcome", "state", "status"),
    [
        ("invalid_key", "key_rejected", KeyState.MANUAL_REVIEW, 400),
        ("leaked_key", "key_rejected", KeyState.MANUAL_REVIEW, 403),
        ("depleted", "out_of_funds", KeyState.OUT_OF_FUNDS, 402),
        ("rate_limited", "retryable", KeyState.COOLDOWN, 429),
        ("unavailable", "retryable", KeyState.COOLDOWN, 503),
        ("drop", "transport", KeyState.COOLDOWN, None),
    ],
)
def test_a_failing_check_shows_its_outcome_class_and_treats_the_key_as_the_router_does(
    pool_admin, db, gemini, behaviour, outcome, state, status
):
    add(pool_admin)
    key = only_key(db)
    gemini.behave(SECRET, behaviour)
    ok, info, errors = run_key_test(pool_admin, key.id)
    assert ok == info == [] and len(errors) == 1
    assert errors[0].startswith(f"Key #{key.id} failed the free check: {outcome}. Free check over")
    shown = str(state).replace("_", " ")
    assert errors[0].endswith(f"State: {shown}.") or f"State: {shown}, out of service" in errors[0]
    assert SECRET not in errors[0]
    [attempt] = attempts(db)
    assert attempt.outcome == outcome and attempt.http_status == status
    assert only_key(db).state == state
    [entry] = audit_rows(db, "key.test")
    assert entry.after["test"]["outcome"] == outcome and entry.after["state"] == state


@pytest.mark.parametrize(
    "state", [KeyState.MANUAL_REVIEW, KeyState.OUT_OF_FUNDS, KeyState.DISABLED]
)
def test_a_successful_test_never_puts_a_key_back_in_service(pool_admin, db, state):
    add(pool_admin)
    key = only_key(db)
    db.execute(sa.update(ProviderKey).values(state=state, consecutive_failures=11))
    db.commit()
    _, info, _ = run_key_test(pool_admin, key.id)
    shown = str(state).replace("_", " ")
    assert info and info[0].startswith("Key accepted; this does not prove it can generate images")
    assert info[0].endswith(f"State: {shown}, out of service until an admin restores it.")
    assert only_key(db).state == state and only_key(db).consecutive_failures == 11
    pool_admin.act(f"/admin/keys/{key.id}/restore")
    assert only_key(db).state == KeyState.ACTIVE


def test_a_test_with_one_real_image_calls_generate_content_and_counts_its_spend(
    pool_admin, db, gemini
):
    add(pool_admin)
    key = only_key(db)
    gemini.clear()
    ok, _, _ = run_key_test(pool_admin, key.id, generate="1")
    assert ok[0].startswith(f"Key #{key.id} made an image. One real image over direct (")
    assert "made a 1024x1024 image/png image" in ok[0]
    [request] = gemini.requests
    assert request.method == "POST" and request.path.endswith(":generateContent")
    [attempt] = attempts(db)
    assert attempt.reference == KEY_TEST_REFERENCE and attempt.estimated_cost > 0
    assert only_key(db).estimated_spend == attempt.estimated_cost


def test_a_key_with_a_proxy_is_tested_through_it(pool_admin, db, gemini, tmp_path: Path):
    with http_proxy(tmp_path) as proxy_url:
        add(pool_admin)
        pool_admin.act("/admin/proxies", {"url": proxy_url, "label": "local"})
        key, proxy = only_key(db), db.scalars(sa.select(Proxy)).one()
        pool_admin.act(f"/admin/keys/{key.id}/edit", {"label": "", "proxy_id": str(proxy.id)})
        _, info, _ = run_key_test(pool_admin, key.id)
    assert "free check over proxy (HTTP 200" in info[0]
    [attempt] = attempts(db)
    assert attempt.path == AttemptPath.PROXY and attempt.proxy_id == proxy.id


def test_the_key_pages_show_success_rate_and_latency_percentiles(pool_admin, db):
    add(pool_admin, label="measured")
    key = only_key(db)
    now = utcnow()
    rows = [(latency, "success") for latency in (100, 200, 300, 400)]
    rows += [(1000, "retryable")]
    for i, (latency, outcome) in enumerate(rows):
        db.add(
            KeyAttempt(
                key_id=key.id,
                provider="nanobanana",
                path="direct",
                outcome=outcome,
                latency_ms=latency,
                picked_at=now,
                claim_version=i,
                created_at=now - dt.timedelta(minutes=5),
            )
        )
    # An old attempt counts for the day, not the hour.
    db.add(
        KeyAttempt(
            key_id=key.id,
            provider="nanobanana",
            path="direct",
            outcome="success",
            latency_ms=5000,
            picked_at=now,
            claim_version=9,
            created_at=now - dt.timedelta(hours=3),
        )
    )
    db.commit()
    row = pool_admin.get("/admin/keys").html.select_one(f"tr[data-key='{key.id}']")
    cells = {td["data-label"]: " ".join(td.get_text(" ").split()) for td in row.select("td")}
    assert cells["Success 1 h"] == "80.0 % 5 calls"
    assert cells["Success 24 h"] == "83.3 % 6 calls"
    # percentile_cont over 100, 200, 300, 400, 1000: p50 300, p95 880.
    assert cells["p50 / p95 (1 h)"] == "300 ms / 880 ms"
    assert cells["p50 / p95 (24 h)"] == "350 ms / 4,000 ms"
    detail = pool_admin.get(f"/admin/keys/{key.id}")
    assert len(detail.html.select("#attempts tr[data-outcome]")) == 6
    overview = pool_admin.get("/admin")
    assert "measured: p95 4,000 ms" in overview.text


def test_percentiles_computed_in_python_match_postgresql(db):
    from nproxy_core.admin.histogram import exact_percentile as percentile

    values = [17, 3, 250, 41, 41, 8, 1200, 77, 5]
    for fraction in (0.5, 0.95):
        expected = db.scalar(
            sa.select(sa.func.percentile_cont(fraction).within_group(sa.column("v"))).select_from(
                sa.values(sa.column("v", sa.Integer), name="t").data([(v,) for v in values])
            )
        )
        assert percentile(sorted(values), fraction) == pytest.approx(expected)
    assert percentile([], 0.5) is None


def test_proxies_are_added_with_their_password_hidden_and_enabled_or_disabled(pool_admin, db):
    _, ok, _ = pool_admin.act(
        "/admin/proxies", {"url": "http://user:s3cret@127.0.0.1:3128", "label": "eu-1"}
    )
    assert ok == ["Added proxy 1 (http://user:***@127.0.0.1:3128)."]
    page = pool_admin.get("/admin/proxies")
    assert "s3cret" not in page.text and "user:***@127.0.0.1:3128" in page.text
    _, _, errors = pool_admin.act("/admin/proxies", {"url": "ftp://127.0.0.1:21"})
    assert errors and "proxy URL must start with" in errors[0]
    _, _, errors = pool_admin.act("/admin/proxies/1/enable")
    assert errors == ["proxy 1 is already active"]
    _, ok, _ = pool_admin.act("/admin/proxies/1/disable")
    assert ok == ["Proxy 1 is disabled."]
    db.expire_all()
    assert db.get(Proxy, 1).state == "disabled"
    _, ok, _ = pool_admin.act("/admin/proxies/1/enable")
    assert ok == ["Proxy 1 is enabled."]
    assert [e.action for e in audit_rows(db)] == ["proxy.add", "proxy.disable", "proxy.enable"]
    assert all("s3cret" not in str(e.after) for e in audit_rows(db))


def test_a_proxy_test_reaches_gemini_through_it_and_records_its_health(
    pool_admin, db, gemini, tmp_path: Path
):
    with http_proxy(tmp_path) as proxy_url:
        pool_admin.act("/admin/proxies", {"url": proxy_url})
        gemini.clear()
        _, ok, errors = pool_admin.act("/admin/proxies/1/test")
    assert errors == [] and "nanobanana: ok" in ok[0] and "Gemini answered HTTP 403" in ok[0]
    assert [r.path for r in gemini.requests] == ["/v1beta/models/gemini-2.5-flash-image"]
    assert "x-goog-api-key" not in gemini.requests[0].headers
    db.expire_all()
    proxy = db.get(Proxy, 1)
    assert proxy.last_ok_at is not None and proxy.consecutive_failures == 0
    [entry] = audit_rows(db, "proxy.test")
    assert {c["provider"] for c in entry.after["test"]} == {"demo", "nanobanana"}


def test_a_dead_proxy_fails_its_test_and_its_health_says_so(pool_admin, db):
    pool_admin.act("/admin/proxies", {"url": f"http://127.0.0.1:{free_port()}"})
    _, ok, errors = pool_admin.act("/admin/proxies/1/test")
    assert ok == [] and "failed" in errors[0]
    db.expire_all()
    proxy = db.get(Proxy, 1)
    assert proxy.consecutive_failures == 1 and proxy.last_failure_at is not None
    row = pool_admin.get("/admin/proxies").html.select_one("tr[data-proxy='1']")
    assert row.select_one("td[data-label='Failures in a row']").get_text().strip() == "1"
    assert "Connection refused" in row.select_one("td[data-label='Last failure']").get_text()


def test_spend_falls_back_to_the_price_per_image_when_an_answer_reports_no_usage(
    make_app, db, admin_user, gemini
):
    """DESIGN 3: ``nanobanana.price_per_image`` prices an image whose answer carried no usage
    metadata (and only then: usage metadata prices by tokens)."""
    from admin_support import AdminBrowser
    from fakes.gemini import success

    app = make_app(
        nproxy__providers="nanobanana",
        nanobanana__api_base=gemini.base_url,
        nanobanana__price_per_image="0.05",
    )
    admin = AdminBrowser(app).login(admin_user.email)
    add(admin)

    def no_usage(request: Any) -> Any:
        reply = success(request)
        reply.body.pop("usageMetadata")
        return reply

    gemini.behave(SECRET, no_usage)
    ok, _, _ = run_key_test(admin, 1, generate="1")
    assert " made an image. " in ok[0]
    [attempt] = attempts(db)
    assert attempt.estimated_cost == Decimal("0.05")
    assert only_key(db).estimated_spend == Decimal("0.05")


def test_a_provider_without_a_free_check_refuses_it_and_changes_nothing(pool_app, pool_admin, db):
    """A plugin may offer no key check (the contract's ``supports_key_check``): the free test
    is refused with the way out, and only the test with one real image runs."""
    from keypool_support import ScriptedProvider
    from nproxy_core.plugin_registry import IPlugins

    scripted = ScriptedProvider()
    scripted.name = "scripted"
    find_service(pool_app.app.registry, IPlugins).providers["scripted"] = scripted
    key = pool.add_key(
        db,
        find_service(pool_app.app.registry, ISecretBox),
        provider="scripted",
        secret="scripted-key-1",
        enabled_providers=["scripted"],
        actor=Actor("t", Surface.CLI),
    )
    db.commit()
    version = key.version
    _, ok, errors = pool_admin.act(f"/admin/keys/{key.id}/test")
    assert ok == [] and errors == [
        "provider 'scripted' cannot check a key without making an image; "
        "test it with one real image instead"
    ]
    assert only_key(db).version == version and attempts(db) == []
    assert audit_rows(db, "key.test") == []
    ok, _, _ = run_key_test(pool_admin, key.id, generate="1")
    assert " made an image. " in ok[0] and scripted.calls == ["scripted-key-1"]


def test_the_keys_page_shows_each_projects_spend_and_until_when_it_rests(pool_admin, db):
    for n, project in enumerate(("gcp-a", "gcp-a", "gcp-b", None)):
        _, errors = add(pool_admin, secret=f"{SECRET}{n}", project=project or "")
        assert errors == [], errors
    keys = {k.id: k for k in db.scalars(sa.select(ProviderKey))}
    for key_id, spend in {1: "0.04", 2: "0.08", 3: "1.5", 4: "0.2"}.items():
        keys[key_id].estimated_spend = Decimal(spend)
    # gcp-b rests after a rate limit: its only key in service cools down until 08:00.
    resting = dt.datetime(2099, 1, 1, 8, 0, tzinfo=dt.UTC)
    keys[3].state, keys[3].cooldown_until = KeyState.COOLDOWN, resting
    db.commit()

    page = pool_admin.get("/admin/keys").html
    rows = {
        tr["data-project"]: {
            td["data-label"]: " ".join(td.get_text(" ").split()) for td in tr.select("td")
        }
        for tr in page.select("#project-list tr[data-project]")
    }
    # A key of no project is its own: it is not listed.
    assert rows == {
        "gcp-a": {
            "Project": "gcp-a nanobanana",
            "Keys in service": "2 of 2",
            "Spend": "$0.12",
            "Rests until": "in service",
        },
        "gcp-b": {
            "Project": "gcp-b nanobanana",
            "Keys in service": "1 of 1",
            "Spend": "$1.50",
            "Rests until": "2099-01-01 08:00:00",
        },
    }
