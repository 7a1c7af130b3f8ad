"""Several processes routing at once against PostgreSQL: no lost update, no key used while
cooling down, every provider call recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from nproxy_core.keypool.models import AttemptOutcome, KeyAttempt, KeyState, ProviderKey

WORKER = Path(__file__).with_name("route_worker.py")
PROCESSES = 4
IMAGES = 25


@pytest.fixture
def contended_pool(add_key, fake) -> dict[int, str]:
    """Healthy keys, always-failing keys and a rate-limited key: {key id: secret}."""
    secrets = [f"success-conc{i:04d}" for i in range(4)]
    secrets += ["unavailable-conc0001", "server_error-conc0002", "limited-conc0003"]
    fake.behave("limited-conc0003", "rate_limited", retry_delay="2s")
    return {add_key(secret): secret for secret in secrets}


@pytest.mark.slow
def test_processes_routing_at_once_keep_every_invariant(
    contended_pool, base_settings, pool_settings, fake, db
):
    settings: dict[str, Any] = {
        **base_settings,
        **pool_settings,
        # Short cooldowns so that failing keys come back (and fail again) during the run.
        "nproxy.keypool.cooldown_seconds": "1",
        "nproxy.keypool.max_consecutive_failures": "1000",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(settings), str(IMAGES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:  # all start routing together
            worker.stdin.write("go\n")
            worker.stdin.flush()
        summaries = [json.loads(worker.communicate(timeout=120)[0]) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert all(w.returncode == 0 for w in workers)

    # Healthy keys were always there: every image was made.
    assert sum(s["ok"] for s in summaries) == PROCESSES * IMAGES

    db.expire_all()
    keys = {k.id: k for k in db.scalars(sa.select(ProviderKey))}
    rows = db.scalars(sa.select(KeyAttempt).order_by(KeyAttempt.id)).all()
    by_key: dict[int, list[KeyAttempt]] = defaultdict(list)
    for row in rows:
        by_key[row.key_id].append(row)

    for key_id, secret in contended_pool.items():
        key, mine = keys[key_id], by_key[key_id]

        # Every provider call is recorded: the fake saw exactly as many as were logged.
        assert len(fake.requests_for(secret)) == len(mine), secret

        # No lost update: every write to the key row (each claim, each outcome) has its own
        # version, and together they account for the row's version exactly.
        claims = {a.claim_version for a in mine}
        outcomes = [a.outcome_version for a in mine if a.outcome_version is not None]
        assert len(claims) == len(mine)  # no proxies here: one call per claim
        assert sorted(claims | set(outcomes)) == list(range(1, key.version + 1)), secret
        assert len(outcomes) == len(set(outcomes))
        assert key.estimated_spend == sum((a.estimated_cost or Decimal(0)) for a in mine)
        failures = [a for a in mine if a.outcome != AttemptOutcome.SUCCESS]
        if secret.startswith("success"):
            assert not failures and key.consecutive_failures == 0
            assert key.state == KeyState.ACTIVE
        else:
            assert len(failures) == len(mine) == key.consecutive_failures >= 1

        # Never used while cooling down: a claim made after a failure was applied (a higher
        # row version) was made at or after the deadline that failure set.
        for failure in failures:
            for attempt in mine:
                if attempt.claim_version > failure.outcome_version:
                    assert attempt.picked_at >= failure.cooldown_until, (secret, failure.id)

    # The rate-limited key honoured the provider's longer retry delay.
    limited = next(k for k, s in contended_pool.items() if s.startswith("limited"))
    for attempt in by_key[limited]:
        assert (attempt.cooldown_until - attempt.created_at).total_seconds() >= 2


def test_processes_share_a_project_cooldown_through_postgresql(
    add_key, base_settings, pool_settings, fake, db
):
    # A rate-limited project's keys interleaved with a healthy project's, so the processes'
    # first choices land on several keys of the limited project at once.
    limited, healthy = [], []
    for n in range(6):
        limited.append(add_key(f"rate_limited-proj{n:04d}", project="gcp-limited"))
        healthy.append(add_key(f"success-proj{n:04d}", project="gcp-ok"))
    settings: dict[str, Any] = {**base_settings, **pool_settings}
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(settings), str(IMAGES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        summaries = [json.loads(worker.communicate(timeout=120)[0]) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert all(w.returncode == 0 for w in workers)  # no deadlock between the project updates
    assert sum(s["ok"] for s in summaries) == PROCESSES * IMAGES

    # The first 429 any process saw rested the project for all of them: at most one call per
    # process was already on its way (six keys, called one by one, would be six or more).
    limited_calls = [r for r in fake.requests if r.api_key.startswith("rate_limited")]
    assert 1 <= len(limited_calls) <= PROCESSES

    db.expire_all()
    keys = {k.id: k for k in db.scalars(sa.select(ProviderKey))}
    rows = db.scalars(sa.select(KeyAttempt).where(KeyAttempt.key_id.in_(limited))).all()
    assert len(rows) == len(limited_calls)
    # Only the called keys counted failures; the whole project rests until one deadline, the
    # latest any 429 set (a later one is never shortened by an earlier one).
    assert sum(keys[k].consecutive_failures for k in limited) == len(rows)
    assert {keys[k].state for k in limited} == {KeyState.COOLDOWN}
    assert {keys[k].cooldown_until for k in limited} == {max(a.cooldown_until for a in rows)}
    assert {keys[k].state for k in healthy} == {KeyState.ACTIVE}
