"""Every rule of the key pool router (DESIGN.md 4.5), against PostgreSQL, the real Nano Banana
plugin and the fake Gemini server."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from decimal import Decimal

import pytest
import sqlalchemy as sa

from fakes.gemini import BEHAVIOURS
from fakes.proxies import free_port
from keypool_support import (
    ACTOR,
    IMAGE,
    attempts,
    expire_cooldown,
    fresh_key,
    fresh_proxy,
    set_key,
)
from nproxy_core.alerts import IAlertNotifier
from nproxy_core.audit.models import AuditEntry
from nproxy_core.db import utcnow
from nproxy_core.keypool import KeyPoolRouter, PoolUnavailable, ProviderNotEnabled, services
from nproxy_core.keypool.models import AttemptOutcome, AttemptPath, KeyState, ProviderKey
from nproxy_core.plugins import ContentPolicyError, InvalidInputError, UserCausedError
from nproxy_core.tasks import run_now
from nproxy_core.wiring import find_service

COOLDOWN = dt.timedelta(seconds=300)


def route(router: KeyPoolRouter, provider: str = "nanobanana", **kw):
    return router.route_image(provider, IMAGE, **kw)


# --- success ----------------------------------------------------------------------------------


def test_success_resets_failures_and_records_spend(router, add_key, db, fake):
    key_id = add_key("success-aaaa1")
    set_key(db, key_id, consecutive_failures=4)

    routed = route(router, reference="gen-1")

    assert routed.key_id == key_id and routed.attempts == 1
    assert routed.result.image.mime == "image/png"
    key = fresh_key(db, key_id)
    assert key.consecutive_failures == 0
    assert key.state == KeyState.ACTIVE
    assert key.estimated_spend == routed.result.estimated_cost > 0
    [attempt] = attempts(db)
    assert attempt.outcome == AttemptOutcome.SUCCESS
    assert attempt.path == AttemptPath.DIRECT
    assert attempt.reference == "gen-1"
    assert attempt.estimated_cost == routed.result.estimated_cost
    assert attempt.http_status is None and attempt.error is None
    assert attempt.latency_ms >= 0
    assert len(fake.requests_for("success-aaaa1")) == 1


# --- retryable --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [("server_error", 500), ("unavailable", 503), ("gateway_timeout", 504), ("drop", None)],
)
def test_retryable_cools_the_key_down_and_the_next_key_makes_the_image(
    router, add_key, db, fake, behaviour, status
):
    failing = add_key(f"{behaviour}-aaaa1")
    healthy = add_key("success-aaaa2")

    before = utcnow()
    routed = route(router)
    after = utcnow()

    assert routed.key_id == healthy and routed.attempts == 2
    key = fresh_key(db, failing)
    assert key.state == KeyState.COOLDOWN
    assert key.consecutive_failures == 1
    assert before + COOLDOWN <= key.cooldown_until <= after + COOLDOWN
    first, second = attempts(db)
    expected = AttemptOutcome.TRANSPORT if behaviour == "drop" else AttemptOutcome.RETRYABLE
    assert (first.key_id, first.outcome, first.http_status) == (failing, expected, status)
    assert first.cooldown_until == key.cooldown_until
    assert first.error and "aaaa1" not in first.error
    assert (second.key_id, second.outcome) == (healthy, AttemptOutcome.SUCCESS)
    assert fresh_key(db, healthy).state == KeyState.ACTIVE


def test_rate_limit_with_a_longer_retry_delay_is_honoured(router, add_key, db, fake):
    key_id = add_key("limited-aaaa1")
    fake.behave("limited-aaaa1", "rate_limited", retry_delay="900s")
    add_key("success-aaaa2")

    before = utcnow()
    route(router)

    key = fresh_key(db, key_id)
    assert key.state == KeyState.COOLDOWN
    assert key.cooldown_until >= before + dt.timedelta(seconds=900)
    assert attempts(db, key_id)[0].http_status == 429


def test_rate_limit_with_a_shorter_retry_delay_gets_the_default_cooldown(router, add_key, db, fake):
    key_id = add_key("limited-aaaa1")
    fake.behave("limited-aaaa1", "rate_limited", retry_delay="5s")
    add_key("success-aaaa2")

    before = utcnow()
    route(router)
    after = utcnow()

    key = fresh_key(db, key_id)
    assert before + COOLDOWN <= key.cooldown_until <= after + COOLDOWN


def test_a_failure_never_shortens_a_later_cooldown(router, add_key, db, fake, engine):
    key_id = add_key("racing-aaaa1")
    add_key("success-aaaa2")
    later = utcnow() + dt.timedelta(hours=2)

    def rate_limited_elsewhere(request):
        # While this attempt is in flight, another process records a long rate limit.
        with engine.begin() as conn:
            conn.execute(
                sa.update(ProviderKey)
                .where(sa.column("id") == key_id)
                .values(state=KeyState.COOLDOWN, cooldown_until=later)
            )
        return BEHAVIOURS["unavailable"](request)

    fake.behave("racing-aaaa1", rate_limited_elsewhere)
    route(router)

    key = fresh_key(db, key_id)
    assert key.cooldown_until == later
    assert key.state == KeyState.COOLDOWN and key.consecutive_failures == 1


def test_a_success_keeps_a_cooldown_set_meanwhile_by_another_process(
    router, add_key, db, fake, engine
):
    key_id = add_key("racing-aaaa1")
    later = utcnow() + dt.timedelta(hours=1)

    def cooled_elsewhere(request):
        with engine.begin() as conn:
            conn.execute(
                sa.update(ProviderKey)
                .where(sa.column("id") == key_id)
                .values(state=KeyState.COOLDOWN, cooldown_until=later, consecutive_failures=1)
            )
        return BEHAVIOURS["success"](request)

    fake.behave("racing-aaaa1", cooled_elsewhere)
    route(router)

    key = fresh_key(db, key_id)
    assert (key.state, key.cooldown_until, key.consecutive_failures) == (
        KeyState.COOLDOWN,
        later,
        0,
    )


def test_more_than_ten_consecutive_failures_across_cooldowns_send_the_key_to_review(
    router, add_key, db, caplog
):
    key_id = add_key("unavailable-aaaa1")
    for failures in range(1, 11):
        with pytest.raises(PoolUnavailable):
            route(router)
        key = fresh_key(db, key_id)
        assert (key.state, key.consecutive_failures) == (KeyState.COOLDOWN, failures)
        # In cooldown the key is not used at all...
        with pytest.raises(PoolUnavailable):
            route(router)
        assert len(attempts(db, key_id)) == failures
        # ...until its deadline passes.
        expire_cooldown(db, key_id)

    with caplog.at_level(logging.ERROR, logger="nproxy.alerts"), pytest.raises(PoolUnavailable):
        route(router)
    key = fresh_key(db, key_id)
    assert (key.state, key.consecutive_failures) == (KeyState.MANUAL_REVIEW, 11)
    assert "11 consecutive failures" in key.state_reason
    assert any("manual review" in r.getMessage() for r in caplog.records)
    expire_cooldown(db, key_id)
    with pytest.raises(PoolUnavailable):
        route(router)
    assert len(attempts(db, key_id)) == 11


def test_the_failure_limit_is_a_setting(make_app, pool_settings, add_key, db, registry):
    router = KeyPoolRouter.from_registry(registry, max_consecutive_failures=2)
    key_id = add_key("unavailable-aaaa1")
    for _ in range(3):
        with pytest.raises(PoolUnavailable):
            route(router)
        expire_cooldown(db, key_id)
    assert fresh_key(db, key_id).state == KeyState.MANUAL_REVIEW


# --- out of funds -----------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["depleted", "prepayment_depleted", "spending_cap"])
def test_out_of_funds_takes_the_whole_billing_group_out(router, add_key, db, fake, behaviour):
    depleted = add_key(f"{behaviour}-aaaa1", billing_group="acme")
    sibling = add_key("success-aaaa2", billing_group="acme")
    disabled_sibling = add_key("success-aaaa3", billing_group="acme", state=KeyState.DISABLED)
    other = add_key("success-aaaa4", billing_group="other")
    other_provider = add_key("demo-key-aaaa5", provider="demo", billing_group="acme")

    routed = route(router)

    assert routed.key_id == other
    assert fresh_key(db, depleted).state == KeyState.OUT_OF_FUNDS
    assert fresh_key(db, sibling).state == KeyState.OUT_OF_FUNDS
    assert fresh_key(db, disabled_sibling).state == KeyState.DISABLED
    assert fresh_key(db, other).state == KeyState.ACTIVE
    assert fresh_key(db, other_provider).state == KeyState.ACTIVE
    assert fake.requests_for("success-aaaa2") == []
    assert attempts(db, depleted)[0].outcome == AttemptOutcome.OUT_OF_FUNDS
    # Out of service until an admin says otherwise.
    assert {route(router).key_id for _ in range(3)} == {other}
    assert len(fake.requests_for(f"{behaviour}-aaaa1")) == 1


# --- key rejected -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        ("invalid_key", 400),
        ("expired_key", 400),
        ("unauthenticated", 401),
        ("leaked_key", 403),
        ("service_disabled", 403),
    ],
)
def test_a_rejected_key_goes_to_manual_review(router, add_key, db, behaviour, status):
    rejected = add_key(f"{behaviour}-aaaa1")
    healthy = add_key("success-aaaa2")

    assert route(router).key_id == healthy

    key = fresh_key(db, rejected)
    assert key.state == KeyState.MANUAL_REVIEW
    assert key.consecutive_failures == 0
    assert key.state_reason
    attempt = attempts(db, rejected)[0]
    assert (attempt.outcome, attempt.http_status) == (AttemptOutcome.KEY_REJECTED, status)


# --- user-caused ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("bad_argument", InvalidInputError),
        ("payload_too_large", InvalidInputError),
        ("prompt_blocked", ContentPolicyError),
        ("image_safety", ContentPolicyError),
        ("text_only", InvalidInputError),
    ],
)
def test_user_caused_fails_now_and_leaves_the_key_alone(
    router, add_key, db, fake, behaviour, error
):
    key_id = add_key(f"{behaviour}-aaaa1")
    set_key(db, key_id, consecutive_failures=2)
    add_key("success-aaaa2")
    before = fresh_key(db, key_id)
    snapshot = (
        before.state,
        before.consecutive_failures,
        before.cooldown_until,
        before.estimated_spend,
    )

    with pytest.raises(error) as raised:
        route(router)

    assert isinstance(raised.value, UserCausedError) and raised.value.message
    after = fresh_key(db, key_id)
    assert (
        after.state,
        after.consecutive_failures,
        after.cooldown_until,
        after.estimated_spend,
    ) == snapshot
    assert fake.requests_for("success-aaaa2") == []
    [attempt] = attempts(db)
    assert attempt.outcome == AttemptOutcome.USER_CAUSED
    assert attempt.outcome_version is None


# --- nothing left -----------------------------------------------------------------------------


def test_every_key_failing_is_temporarily_unavailable_and_alerts(router, add_key, db, fake, caplog):
    ids = [add_key("unavailable-aaaa1"), add_key("server_error-aaaa2"), add_key("drop-aaaa3")]

    with (
        caplog.at_level(logging.ERROR, logger="nproxy.alerts"),
        pytest.raises(PoolUnavailable) as raised,
    ):
        route(router, reference="gen-9")

    assert raised.value.code == "provider_unavailable"
    assert "temporarily unavailable" in raised.value.message
    assert raised.value.tried == 3
    assert sorted(a.key_id for a in attempts(db)) == ids  # each tried exactly once
    assert [fresh_key(db, i).state for i in ids] == [KeyState.COOLDOWN] * 3
    assert any("provider unavailable" in r.getMessage() for r in caplog.records)


def test_no_keys_at_all_is_temporarily_unavailable(router):
    with pytest.raises(PoolUnavailable):
        route(router)


def test_a_provider_that_is_not_enabled_is_refused(router):
    with pytest.raises(ProviderNotEnabled):
        route(router, provider="nope")


# --- eligibility ------------------------------------------------------------------------------


def test_a_cooldown_key_past_its_deadline_is_used_again(router, add_key, db):
    key_id = add_key("success-aaaa1", state=KeyState.COOLDOWN)
    set_key(db, key_id, cooldown_until=utcnow() - dt.timedelta(seconds=1), consecutive_failures=3)

    assert route(router).key_id == key_id

    key = fresh_key(db, key_id)
    assert (key.state, key.cooldown_until, key.consecutive_failures) == (KeyState.ACTIVE, None, 0)


def test_a_cooldown_key_before_its_deadline_is_skipped(router, add_key, db, fake):
    cooling = add_key("success-aaaa1", state=KeyState.COOLDOWN)
    set_key(db, cooling, cooldown_until=utcnow() + dt.timedelta(minutes=5))
    active = add_key("success-aaaa2")

    assert {route(router).key_id for _ in range(3)} == {active}
    assert fake.requests_for("success-aaaa1") == []


@pytest.mark.parametrize(
    "state", [KeyState.DISABLED, KeyState.OUT_OF_FUNDS, KeyState.MANUAL_REVIEW]
)
def test_keys_out_of_service_are_never_used_until_restored(
    router, add_key, db, fake, state, registry
):
    key_id = add_key("success-aaaa1", state=state)

    with pytest.raises(PoolUnavailable):
        route(router)
    assert fake.requests == []

    services.restore_key(db, key_id, actor=ACTOR, alerts=find_service(registry, IAlertNotifier))
    db.commit()
    assert route(router).key_id == key_id
    entry = db.scalars(sa.select(AuditEntry).where(AuditEntry.action == "key.restore")).one()
    assert entry.before["state"] == str(state) and entry.after["state"] == "active"
    assert entry.surface == "cli" and entry.target_id == str(key_id)


# --- proxies ----------------------------------------------------------------------------------


def test_a_key_with_a_proxy_calls_through_it(router, add_key, db, fake, http_proxy):
    key_id = add_key("success-aaaa1", proxy_url=http_proxy)

    assert route(router).key_id == key_id

    [request] = fake.requests
    assert "proxy.py" in request.headers.get("via", "")  # it really went through proxy.py
    [attempt] = attempts(db)
    assert (attempt.path, attempt.outcome) == (AttemptPath.PROXY, AttemptOutcome.SUCCESS)
    proxy = fresh_proxy(db, attempt.proxy_id)
    assert proxy.last_ok_at is not None and proxy.consecutive_failures == 0


def test_a_dead_proxy_falls_back_direct_and_counts_against_the_proxy(router, add_key, db, fake):
    key_id = add_key("success-aaaa1", proxy_url=f"http://127.0.0.1:{free_port()}")

    routed = route(router)

    assert routed.key_id == key_id and routed.attempts == 2
    first, second = attempts(db)
    assert (first.path, first.outcome) == (AttemptPath.PROXY, AttemptOutcome.TRANSPORT)
    assert (second.path, second.outcome) == (AttemptPath.DIRECT, AttemptOutcome.SUCCESS)
    assert first.outcome_version is None  # the key was not blamed
    proxy = fresh_proxy(db, first.proxy_id)
    assert (proxy.consecutive_failures, proxy.total_failures) == (1, 1)
    assert proxy.last_error and proxy.last_ok_at is None
    key = fresh_key(db, key_id)
    assert (key.state, key.consecutive_failures) == (KeyState.ACTIVE, 0)
    assert "via" not in fake.requests[0].headers


def test_a_key_error_over_a_proxy_is_the_keys_and_not_retried_direct(
    router, add_key, db, fake, http_proxy
):
    key_id = add_key("unavailable-aaaa1", proxy_url=http_proxy)

    with pytest.raises(PoolUnavailable):
        route(router)

    [attempt] = attempts(db)
    assert (attempt.path, attempt.outcome) == (AttemptPath.PROXY, AttemptOutcome.RETRYABLE)
    assert fresh_key(db, key_id).consecutive_failures == 1
    assert fresh_proxy(db, attempt.proxy_id).consecutive_failures == 0


# --- round robin ------------------------------------------------------------------------------


@pytest.mark.parametrize(("keys", "images"), [(4, 10), (3, 9), (5, 7)])
def test_round_robin_is_fair(registry, add_key, db, keys, images):
    ids = [add_key(f"success-fair{i:04d}") for i in range(keys)]
    # Two routers, as two worker processes would have: the cursor is in the database.
    routers = [KeyPoolRouter.from_registry(registry), KeyPoolRouter.from_registry(registry)]

    used = Counter(routers[n % 2].route_image("nanobanana", IMAGE).key_id for n in range(images))

    assert set(used) <= set(ids)
    for key_id in ids:
        assert abs(used[key_id] - images / keys) <= 1, used


def test_round_robin_skips_keys_out_of_service_and_resumes_after_the_cursor(router, add_key, db):
    a, b, c = (add_key(f"success-rr{i:04d}") for i in range(3))
    assert [route(router).key_id for _ in range(2)] == [a, b]
    set_key(db, c, state=KeyState.DISABLED)
    assert [route(router).key_id for _ in range(3)] == [a, b, a]


# --- the outer deadline and plugin bugs -----------------------------------------------------


def test_a_hung_attempt_is_cut_at_the_deadline_and_the_next_key_used(router, add_key, db, scripted):
    hung = add_key("hang-aaaa0001", provider="scripted")
    healthy = add_key("fine-aaaa0002", provider="scripted")

    routed = route(router, provider="scripted")

    assert routed.key_id == healthy
    first = attempts(db, hung)[0]
    assert first.outcome == AttemptOutcome.TRANSPORT
    assert "deadline" in first.error
    assert fresh_key(db, hung).state == KeyState.COOLDOWN


def test_a_plugin_bug_is_retryable_and_the_secret_never_logged(
    router, add_key, db, scripted, caplog
):
    buggy = add_key("crash-secret-aaaa0001", provider="scripted")
    add_key("fine-aaaa0002", provider="scripted")

    with caplog.at_level(logging.DEBUG):
        route(router, provider="scripted")

    attempt = attempts(db, buggy)[0]
    assert attempt.outcome == AttemptOutcome.RETRYABLE
    assert "RuntimeError" in attempt.error
    assert "crash-secret-aaaa0001" not in caplog.text
    assert "RuntimeError" in caplog.text


# --- balances ---------------------------------------------------------------------------------


def test_balance_task_takes_empty_keys_and_their_group_out(registry, add_key, db, scripted):
    from nproxy_core.keypool.tasks import refresh_balances

    rich = add_key("rich-aaaa0001", provider="scripted")
    empty = add_key("empty-aaaa0002", provider="scripted", billing_group="team")
    sibling = add_key("sibling-aaaa0003", provider="scripted", billing_group="team")
    unknown = add_key("unknown-aaaa0004", provider="scripted")
    gemini = add_key("success-aaaa0005")  # Gemini has no balance API: never asked
    scripted.balances.update(
        {
            "rich-aaaa0001": Decimal("12.5"),
            "empty-aaaa0002": Decimal(0),
            "sibling-aaaa0003": Decimal(3),
        }
    )

    assert run_now(registry, refresh_balances) == 3

    assert (fresh_key(db, rich).state, fresh_key(db, rich).balance) == (
        KeyState.ACTIVE,
        Decimal("12.5"),
    )
    assert fresh_key(db, rich).balance_checked_at is not None
    assert fresh_key(db, empty).state == KeyState.OUT_OF_FUNDS
    assert fresh_key(db, sibling).state == KeyState.OUT_OF_FUNDS
    assert (
        fresh_key(db, unknown).balance is None and fresh_key(db, unknown).state == KeyState.ACTIVE
    )
    assert fresh_key(db, gemini).balance is None
    assert "keypool.refresh_balances" in registry["celery.app"].conf.beat_schedule


def test_a_negative_balance_is_out_of_funds_and_a_hung_check_is_skipped(
    registry, add_key, db, scripted
):
    from nproxy_core.keypool.tasks import refresh_balances

    owing = add_key("owing-aaaa0001", provider="scripted")
    hung = add_key("hang-aaaa0002", provider="scripted")
    scripted.balances["owing-aaaa0001"] = Decimal("-0.01")

    run_now(registry, refresh_balances)

    assert fresh_key(db, owing).state == KeyState.OUT_OF_FUNDS
    assert fresh_key(db, hung).state == KeyState.ACTIVE


# --- per-day quotas ---------------------------------------------------------------------------


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("frozen", "reset"),
    [
        # The 23-hour day of the spring change (PDT from 02:00): the reset is 07:00 UTC.
        (
            dt.datetime(2026, 3, 8, 19, 0, tzinfo=dt.UTC),
            dt.datetime(2026, 3, 9, 7, 0, tzinfo=dt.UTC),
        ),
        # The 25-hour day of the autumn change, after it (PST again): the reset is 08:00 UTC.
        (
            dt.datetime(2026, 11, 1, 10, 30, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC),
        ),
    ],
)
def test_a_per_day_quota_rests_the_key_until_midnight_pacific_and_alerts(
    registry, add_key, db, fake, caplog, frozen, reset
):
    router = KeyPoolRouter.from_registry(registry, clock=lambda: frozen)
    limited = add_key("limited-aaaa1")
    fake.behave("limited-aaaa1", "daily_quota")  # RetryInfo says 19 s: not what counts
    healthy = add_key("success-aaaa2")

    with caplog.at_level(logging.ERROR, logger="nproxy.alerts"):
        routed = route(router)

    assert routed.key_id == healthy
    key = fresh_key(db, limited)
    assert (key.state, key.cooldown_until, key.consecutive_failures) == (
        KeyState.COOLDOWN,
        reset,
        1,
    )
    assert attempts(db, limited)[0].cooldown_until == reset
    [alert] = [r for r in caplog.records if "daily quota" in r.getMessage()]
    assert "America/Los_Angeles" in alert.getMessage()
    assert "aaaa1" not in alert.getMessage()

    # Until the reset the key is never called again, even when it is the only one left.
    router_later = KeyPoolRouter.from_registry(
        registry, clock=lambda: reset - dt.timedelta(seconds=1)
    )
    set_key(db, healthy, state=KeyState.DISABLED)
    fake.clear()
    with pytest.raises(PoolUnavailable):
        route(router_later)
    assert fake.requests_for("limited-aaaa1") == []
