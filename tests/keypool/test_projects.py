"""Rate limits belong to the provider-side project, not the key (DESIGN.md 4.5): a 429 cools the
whole project, only the called key counts a failure, a per-day quota sleeps until midnight
Pacific, and the router never calls a cooled project. PostgreSQL, the real Nano Banana plugin,
the fake Gemini server."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from keypool_support import ACTOR, IMAGE, attempts, fresh_key, set_key
from nproxy_core.alerts import IAlertNotifier
from nproxy_core.db import utcnow
from nproxy_core.keypool import KeyPoolRouter, PoolUnavailable, services
from nproxy_core.keypool.models import AttemptOutcome, KeyState
from nproxy_core.wiring import find_service

COOLDOWN = dt.timedelta(seconds=300)


def route(router: KeyPoolRouter):
    return router.route_image("nanobanana", IMAGE)


def test_a_rate_limit_cools_every_key_of_the_project_and_only_the_called_key_counts(
    router, add_key, db, fake
):
    # Ids in this order: round robin calls the rate-limited key first.
    limited = add_key("rate_limited-a001", project="gcp-a")
    fake.behave("rate_limited-a001", "rate_limited", retry_delay="900s")
    peer = add_key("success-a002", project="gcp-a")
    set_key(db, peer, consecutive_failures=3)
    reviewed = add_key("success-a003", project="gcp-a", state=KeyState.MANUAL_REVIEW)
    elsewhere = add_key("success-b001", project="gcp-b")
    alone = add_key("success-c001")

    before = utcnow()
    routed = route(router)

    # One attempt on the limited project, then another project's key made the image.
    assert (routed.key_id, routed.attempts) == (elsewhere, 2)
    called = fresh_key(db, limited)
    assert called.state == KeyState.COOLDOWN and called.consecutive_failures == 1
    assert called.cooldown_until >= before + dt.timedelta(seconds=900)
    cooled = fresh_key(db, peer)
    assert (cooled.state, cooled.cooldown_until) == (KeyState.COOLDOWN, called.cooldown_until)
    assert cooled.consecutive_failures == 3  # a peer's own count is not touched
    assert fresh_key(db, reviewed).state == KeyState.MANUAL_REVIEW
    assert fresh_key(db, reviewed).cooldown_until is None
    assert fresh_key(db, alone).state == KeyState.ACTIVE
    assert fresh_key(db, elsewhere).state == KeyState.ACTIVE
    [first, second] = attempts(db)
    assert (first.key_id, first.http_status, first.cooldown_until) == (
        limited,
        429,
        called.cooldown_until,
    )
    assert second.key_id == elsewhere
    assert fake.requests_for("success-a002") == []


def test_with_group_rate_limits_off_only_the_called_key_rests(registry, add_key, db, fake):
    router = KeyPoolRouter.from_registry(registry, group_rate_limits=False)
    limited = add_key("rate_limited-a001", project="gcp-a")
    peer = add_key("success-a002", project="gcp-a")

    routed = route(router)

    assert (routed.key_id, routed.attempts) == (peer, 2)
    assert fresh_key(db, limited).state == KeyState.COOLDOWN
    assert fresh_key(db, peer).state == KeyState.ACTIVE


def test_the_setting_is_read_from_the_configuration(make_app, pool_settings, add_key, db, fake):
    app = make_app(
        **{k.replace(".", "__"): v for k, v in pool_settings.items()},
        nproxy__keypool__group_rate_limits="off",
    )
    from nproxy_core.keypool.interfaces import IKeyPoolRouter

    assert find_service(app.app.registry, IKeyPoolRouter).group_rate_limits is False


@pytest.mark.parametrize("behaviour", ["unavailable", "server_error", "drop"])
def test_a_server_error_or_a_dropped_call_cools_only_the_key_not_its_project(
    router, add_key, db, behaviour
):
    failing = add_key(f"{behaviour}-a001", project="gcp-a")
    peer = add_key("success-a002", project="gcp-a")

    routed = route(router)

    assert routed.key_id == peer
    assert fresh_key(db, failing).state == KeyState.COOLDOWN
    assert fresh_key(db, peer).state == KeyState.ACTIVE


def test_a_key_without_a_project_is_its_own_project(router, add_key, db):
    limited = add_key("rate_limited-a001")
    other = add_key("success-a002")

    routed = route(router)

    assert routed.key_id == other
    assert fresh_key(db, limited).state == KeyState.COOLDOWN
    assert fresh_key(db, other).state == KeyState.ACTIVE


def test_the_same_project_name_under_another_provider_is_another_project(
    router, add_key, db, scripted
):
    add_key("rate_limited-a001", project="shared-name")
    other = add_key("scripted-a002", provider="scripted", project="shared-name")

    with pytest.raises(PoolUnavailable):
        route(router)  # the only nanobanana key is rate-limited
    assert fresh_key(db, other).state == KeyState.ACTIVE


def test_a_rate_limit_over_the_key_proxy_cools_the_project_too(router, add_key, db, http_proxy):
    # Through a proxy the outcome is applied by the portable transaction, not the one
    # PostgreSQL statement: both take the same rule.
    limited = add_key("rate_limited-a001", project="gcp-a", proxy_url=http_proxy)
    peer = add_key("success-a002", project="gcp-a")
    elsewhere = add_key("success-b001", project="gcp-b")

    routed = route(router)

    assert routed.key_id == elsewhere
    assert [a.path for a in attempts(db, limited)] == ["proxy"]
    assert fresh_key(db, limited).consecutive_failures == 1
    cooled = fresh_key(db, peer)
    assert cooled.state == KeyState.COOLDOWN and cooled.consecutive_failures == 0
    assert cooled.cooldown_until == fresh_key(db, limited).cooldown_until


def test_the_router_never_calls_a_cooled_project(router, add_key, db, fake):
    # Ten keys of a rate-limited project interleaved with ten healthy keys of another: without
    # the project rule each of the ten would be tried once before the pool learnt.
    for n in range(10):
        add_key(f"rate_limited-a{n:03d}", project="gcp-limited")
        add_key(f"success-b{n:03d}", project="gcp-ok")

    routed = [route(router) for _ in range(40)]

    limited_calls = [r for r in fake.requests if r.api_key.startswith("rate_limited")]
    assert len(limited_calls) == 1
    assert sum(r.attempts for r in routed) == 41
    assert len([r for r in fake.requests if r.api_key.startswith("success")]) == 40


# --- per-day quotas ---------------------------------------------------------------------------


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("frozen", "reset"),
    [
        # The evening before clocks spring forward (8 March 2026, PST until 02:00): 08:00 UTC.
        (_utc(2026, 3, 8, 4, 0), _utc(2026, 3, 8, 8, 0)),
        # The 23-hour day itself, after the change (PDT): the reset is 07:00 UTC.
        (_utc(2026, 3, 8, 19, 0), _utc(2026, 3, 9, 7, 0)),
        # The evening before clocks fall back (1 November 2026, PDT until 02:00): 07:00 UTC.
        (_utc(2026, 11, 1, 6, 0), _utc(2026, 11, 1, 7, 0)),
        # The 25-hour day, after the change (PST again): the reset is 08:00 UTC.
        (_utc(2026, 11, 1, 10, 30), _utc(2026, 11, 2, 8, 0)),
    ],
)
def test_a_per_day_quota_cools_the_project_until_midnight_pacific(
    registry, add_key, db, fake, caplog, frozen, reset
):
    router = KeyPoolRouter.from_registry(registry, clock=lambda: frozen)
    limited = add_key("daily_quota-a001", project="gcp-a")  # RetryInfo says 19 s: not the rule
    peers = [add_key(f"success-a{n:03d}", project="gcp-a") for n in (2, 3)]
    elsewhere = add_key("success-b001", project="gcp-b")

    with caplog.at_level(logging.ERROR, logger="nproxy.alerts"):
        routed = route(router)

    assert (routed.key_id, routed.attempts) == (elsewhere, 2)
    for key_id in (limited, *peers):
        key = fresh_key(db, key_id)
        assert (key.state, key.cooldown_until) == (KeyState.COOLDOWN, reset)
    assert [fresh_key(db, k).consecutive_failures for k in (limited, *peers)] == [1, 0, 0]
    [alert] = [r for r in caplog.records if "daily quota" in r.getMessage()]
    assert "project 'gcp-a'" in alert.getMessage()
    assert "America/Los_Angeles" in alert.getMessage()
    assert alert.subject.endswith("project gcp-a") and "a001" not in alert.getMessage()

    # A second before the reset nothing of the project is called, even as the last resort.
    set_key(db, elsewhere, state=KeyState.DISABLED)
    fake.clear()
    second_before = KeyPoolRouter.from_registry(
        registry, clock=lambda: reset - dt.timedelta(seconds=1)
    )
    with pytest.raises(PoolUnavailable):
        route(second_before)
    assert fake.requests == []

    # At the reset the project is called again (and its quota is back).
    fake.behave("daily_quota-a001", "success")
    at_reset = KeyPoolRouter.from_registry(registry, clock=lambda: reset)
    assert route(at_reset).key_id in (limited, *peers)


# --- keys joining a cooled project, and restores ----------------------------------------------


def test_a_key_added_to_a_cooled_project_rests_with_it(router, add_key, db, fake):
    limited = add_key("rate_limited-a001", project="gcp-a")
    add_key("success-a002", project="gcp-a")
    with pytest.raises(PoolUnavailable):
        route(router)  # the whole pool is the cooled project
    deadline = fresh_key(db, limited).cooldown_until

    joining = add_key("success-a003", project="gcp-a")
    fresh = add_key("success-b001", project="gcp-b")

    key = fresh_key(db, joining)
    assert (key.state, key.cooldown_until) == (KeyState.COOLDOWN, deadline)
    assert fresh_key(db, fresh).state == KeyState.ACTIVE
    assert route(router).key_id == fresh
    assert fake.requests_for("success-a003") == []


def test_a_key_moved_into_a_cooled_project_rests_with_it(router, add_key, db):
    limited = add_key("rate_limited-a001", project="gcp-a")
    moving = add_key("success-b001", project="gcp-b")
    set_key(db, moving, state=KeyState.DISABLED)
    with pytest.raises(PoolUnavailable):
        route(router)
    set_key(db, moving, state=KeyState.ACTIVE)

    services.edit_key(db, moving, actor=ACTOR, project="gcp-a")
    db.commit()

    key = fresh_key(db, moving)
    assert (key.state, key.cooldown_until) == (
        KeyState.COOLDOWN,
        fresh_key(db, limited).cooldown_until,
    )


def test_a_project_with_a_key_in_service_is_not_cooled_for_a_new_key(router, add_key, db):
    add_key("unavailable-a001", project="gcp-a")  # its own cooldown, not the project's
    add_key("success-a002", project="gcp-a")
    route(router)

    joining = add_key("success-a003", project="gcp-a")

    assert fresh_key(db, joining).state == KeyState.ACTIVE


def test_restoring_one_key_of_a_cooled_project_tries_that_key_alone(
    router, add_key, db, fake, registry
):
    limited = add_key("rate_limited-a001", project="gcp-a")
    peer = add_key("success-a002", project="gcp-a")
    with pytest.raises(PoolUnavailable):
        route(router)
    assert fresh_key(db, peer).state == KeyState.COOLDOWN

    # The admin's override is for the key named: it is tried at once; the rest still rests.
    services.restore_key(db, peer, actor=ACTOR, alerts=find_service(registry, IAlertNotifier))
    db.commit()
    assert route(router).key_id == peer
    assert fresh_key(db, limited).state == KeyState.COOLDOWN
    outcomes = [a.outcome for a in attempts(db)]
    assert outcomes == [AttemptOutcome.RETRYABLE, AttemptOutcome.SUCCESS]


def test_a_key_test_answered_with_a_rate_limit_cools_the_project_as_routing_does(
    router, add_key, db, fake
):
    limited = add_key("rate_limited-a001", project="gcp-a")
    peer = add_key("success-a002", project="gcp-a")

    result = router.test_key(limited)

    assert (result.outcome, result.http_status) == (AttemptOutcome.RETRYABLE, 429)
    assert fresh_key(db, peer).state == KeyState.COOLDOWN
    assert fresh_key(db, peer).cooldown_until == fresh_key(db, limited).cooldown_until
    assert [a.reference for a in attempts(db)] == ["key-test"]
