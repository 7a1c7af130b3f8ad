"""An admin's key test (DESIGN 4.5) says what it proves and stays out of the key's health: a
key that fails every image still shows it after a passed free check, whose flash is not a green
success but "Key accepted; this does not prove it can generate images" with the key's state.
Alerts name keys by label and id."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import alerts
from nproxy_core.admin.models import KeyAttemptHour
from nproxy_core.admin.rollups import sum_hour
from nproxy_core.admin.stats import floor_hour
from nproxy_core.alerts import AlertKind
from nproxy_core.alerts.models import Alert
from nproxy_core.db import utcnow
from nproxy_core.keypool.checks import KEY_ACCEPTED
from nproxy_core.keypool.models import (
    KEY_TEST_REFERENCE,
    KeyAttempt,
    KeyState,
    ProviderKey,
    key_name,
)

SECRET = "AIzaSyKEYTESTkeytestKEYTESTkeytest0x9Q2"


def add(admin: Any, secret: str = SECRET, **fields: str) -> ProviderKey:
    _, ok, errors = admin.act("/admin/keys", {"provider": "nanobanana", "secret": secret, **fields})
    assert errors == [] and ok, errors
    return ok


def key_row(db: Any, key_id: int = 1) -> ProviderKey:
    db.expire_all()
    return db.get(ProviderKey, key_id)


def run_key_test(admin: Any, key_id: int) -> tuple[list[str], list[str], list[str]]:
    res = admin.post(f"/admin/keys/{key_id}/test")
    assert res.status_int == 303, res.text[:500]
    page = admin.get(res.location)
    return alerts(page, "success"), alerts(page, "info"), alerts(page, "error")


def failed_images(db: Any, key_id: int, count: int) -> None:
    """``count`` failed image attempts of the key in the last hour, 2,000 ms each."""
    now = utcnow()
    for i in range(count):
        db.add(
            KeyAttempt(
                key_id=key_id,
                provider="nanobanana",
                reference=f"gen-{i}",
                image_index=0,
                path="direct",
                outcome="retryable",
                http_status=503,
                latency_ms=2000,
                picked_at=now,
                claim_version=i,
                created_at=now - dt.timedelta(minutes=10),
            )
        )
    db.execute(sa.update(ProviderKey).values(consecutive_failures=count))
    db.commit()


def health_cells(admin: Any, key_id: int) -> dict[str, str]:
    row = admin.get("/admin/keys").html.select_one(f"tr[data-key='{key_id}']")
    return {td["data-label"]: " ".join(td.get_text(" ").split()) for td in row.select("td")}


def test_a_passed_free_check_of_a_key_that_fails_every_image_is_no_green_success(
    pool_admin, db, gemini
):
    add(pool_admin, label="eu-3")
    failed_images(db, 1, 4)
    before = health_cells(pool_admin, 1)
    assert before["Success 1 h"] == "0.0 % 4 calls" and before["Fails"] == "4"

    ok, info, errors = run_key_test(pool_admin, 1)
    assert ok == [] and errors == []
    assert len(info) == 1 and info[0].startswith(
        f"{KEY_ACCEPTED}. Key 'eu-3' (#1), free check over direct (HTTP 200, "
    )
    assert info[0].endswith("State: active.")
    # The check is recorded, and shown among the key's attempts as a test...
    page = pool_admin.get("/admin/keys/1").html
    newest = page.select_one("#attempts tr[data-outcome]")
    assert newest["data-reference"] == KEY_TEST_REFERENCE
    # ...but the figures still say what users get from the key: no success, 4 calls, the
    # images' latency, 4 failures in a row.
    assert health_cells(pool_admin, 1) == before
    assert key_row(db).consecutive_failures == 4
    hour = page.select("#stats tbody tr")[0]
    assert " ".join(hour.get_text(" ").split()) == "last hour 4 0.0 % 2,000 ms 2,000 ms"


def test_a_failed_key_test_rests_the_key_but_counts_no_failure_in_a_row(pool_admin, db, gemini):
    add(pool_admin)
    # One more counted failure would send the key to review (max_consecutive_failures = 10).
    db.execute(sa.update(ProviderKey).values(consecutive_failures=10))
    db.commit()
    gemini.behave(SECRET, "unavailable")
    ok, info, errors = run_key_test(pool_admin, 1)
    assert ok == info == [] and errors[0].startswith(
        "Key #1 failed the free check: retryable. Free check over direct (HTTP 503, "
    )
    assert errors[0].endswith("State: cooldown.")
    key = key_row(db)
    assert (key.state, key.consecutive_failures) == (KeyState.COOLDOWN, 10)
    assert db.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_a_passed_key_test_clears_no_failures_and_keeps_a_resting_key_resting(
    pool_admin, db, gemini
):
    add(pool_admin)
    later = utcnow() + dt.timedelta(minutes=30)
    db.execute(
        sa.update(ProviderKey).values(
            consecutive_failures=3, state=KeyState.COOLDOWN, cooldown_until=later
        )
    )
    db.commit()
    _, info, _ = run_key_test(pool_admin, 1)
    assert info[0].endswith("State: cooldown.")
    key = key_row(db)
    assert (key.state, key.consecutive_failures, key.cooldown_until) == (
        KeyState.COOLDOWN,
        3,
        later,
    )


def test_hourly_summaries_leave_key_tests_out(pool_admin, db, gemini):
    add(pool_admin)
    run_key_test(pool_admin, 1)
    failed_images(db, 1, 2)
    hour = floor_hour(utcnow() - dt.timedelta(minutes=10))
    db.execute(
        sa.update(KeyAttempt).values(created_at=hour + dt.timedelta(minutes=1))
    )  # the test and the images in one closed hour
    db.commit()
    sum_hour(db, hour)
    db.flush()
    [summary] = db.scalars(sa.select(KeyAttemptHour).where(KeyAttemptHour.key_id == 1)).all()
    assert summary.outcomes == {"retryable": 2}
    db.rollback()


def test_an_alert_about_a_rejected_key_names_it_by_label_and_id(pool_admin, db, gemini):
    add(pool_admin, label="eu-3")
    gemini.behave(SECRET, "invalid_key")
    run_key_test(pool_admin, 1)
    [alert] = db.scalars(sa.select(Alert)).all()
    assert alert.kind == AlertKind.KEY_MANUAL_REVIEW
    assert alert.detail.startswith(
        "nanobanana key 'eu-3' (#1) was rejected and needs manual review"
    )


def test_an_out_of_funds_alert_names_every_key_of_the_billing_group(pool_admin, db, gemini):
    add(pool_admin, label="eu-3", billing_group="acme")
    add(pool_admin, secret=SECRET + "2", billing_group="acme")
    gemini.behave(SECRET, "depleted")
    run_key_test(pool_admin, 1)
    [alert] = db.scalars(sa.select(Alert)).all()
    assert alert.kind == AlertKind.KEY_OUT_OF_FUNDS
    assert alert.detail.startswith("nanobanana key 'eu-3' (#1), key #2 are out of funds: ")
    assert {k.state for k in db.scalars(sa.select(ProviderKey))} == {KeyState.OUT_OF_FUNDS}


@pytest.mark.parametrize(
    ("label", "start", "name"),
    [
        ("eu-3", False, "key 'eu-3' (#12)"),
        (None, False, "key #12"),
        ("", True, "Key #12"),
        ("EU West", True, "Key 'EU West' (#12)"),
    ],
)
def test_a_key_is_named_by_label_and_id(label, start, name):
    assert key_name(12, label, start=start) == name
