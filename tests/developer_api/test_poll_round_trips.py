"""The API's poll, ``GET /v1/generations/{id}``: read-only (no BEGIN and ROLLBACK), its caller
(key, user, plan, quota) read in one statement, the generation in one more; and what the
read-write requests did on the way stays (the key's last use, the quota header)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from nproxy_core.db import IDatabase, utcnow
from nproxy_core.developer_api.models import ApiKey
from nproxy_core.developer_api.services import LAST_USED_RESOLUTION
from nproxy_core.generation.tasks import run_generation
from nproxy_core.tasks import run_now
from nproxy_core.wiring import find_service
from roundtrips import counting


@pytest.fixture
def dev(app, developer_factory, add_key):
    add_key(app.app.registry, "demo-key-1")
    return developer_factory(app, request_limit=10)


def finished(app, dev) -> str:
    gid = dev.generate({"prompt": "a red bicycle"}, Prefer="wait=0").json["id"]
    assert run_now(app.app.registry, run_generation, gid) == "succeeded"
    return gid


def test_the_api_poll_of_a_generation_makes_at_most_two_round_trips(app, dev, tmp_path: Path):
    gid = finished(app, dev)
    engine = find_service(app.app.registry, IDatabase).engine
    with counting(engine, tmp_path) as trips:
        for _ in range(6):  # psycopg prepares each statement on its 5th use
            assert dev.get(f"/v1/generations/{gid}").status_int == 200
        trips.start()
        answer = dev.get(f"/v1/generations/{gid}")
        assert trips.count <= 2
    assert answer.status_int == 200
    assert answer.json["status"] == "succeeded"
    # One image of ten units held and made: 9 left of 10, the 81-100 % bucket.
    assert answer.headers["X-Quota-Bucket"] == "100"
    assert answer.headers["X-RateLimit-Remaining"].isdigit()


def test_the_api_poll_shows_the_quota_read_with_its_key(app, dev, db):
    gid = finished(app, dev)
    db.execute(sa.text("UPDATE billing_cycles SET used = 8"))
    db.commit()
    assert dev.get(f"/v1/generations/{gid}").headers["X-Quota-Bucket"] == "20"


def test_the_read_only_poll_still_notes_the_keys_last_use(app, dev, db):
    gid = finished(app, dev)
    long_ago = utcnow() - LAST_USED_RESOLUTION - dt.timedelta(minutes=5)
    db.execute(sa.update(ApiKey).values(last_used_at=long_ago))
    db.commit()
    assert dev.get(f"/v1/generations/{gid}").status_int == 200
    db.expire_all()
    assert db.scalar(sa.select(ApiKey.last_used_at)) > long_ago + dt.timedelta(minutes=5)


def test_a_revoked_key_or_a_blocked_user_polls_401(app, dev, db):
    gid = finished(app, dev)
    db.execute(sa.text("UPDATE users SET is_blocked = true"))
    db.commit()
    blocked = dev.get(f"/v1/generations/{gid}")
    assert blocked.status_int == 401
    assert "blocked" in blocked.json["error"]["message"]
    db.execute(sa.text("UPDATE users SET is_blocked = false"))
    db.execute(sa.update(ApiKey).values(revoked_at=utcnow()))
    db.commit()
    assert dev.get(f"/v1/generations/{gid}").status_int == 401
