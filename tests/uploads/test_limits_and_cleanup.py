"""Per-user limits on uploads, conversations and checkouts (with or without a plan), uploads no
generation used deleted after a day, and orphaned objects swept (DESIGN 4.11, 9)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import webtest

from apiclient import ApiClient
from nproxy_core.billing.models import Payment
from nproxy_core.db import utcnow
from nproxy_core.generation.models import Conversation
from nproxy_core.storage.orphans import sweep_orphans
from nproxy_core.tasks import run_now
from nproxy_core.uploads.models import Upload
from nproxy_core.uploads.tasks import delete_unused_uploads
from nproxy_core.wiring import prepare_request


def stored_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def count(db: Any, model: Any) -> int:
    db.expire_all()
    return db.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.fixture
def media(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def limited_app(make_app: Any, media: Path) -> webtest.TestApp:
    return make_app(
        storage__local__path=str(media),
        nproxy__payments="demo",
        nproxy__limits__uploads="3/hour",
        nproxy__limits__conversations="3/hour",
        nproxy__limits__checkouts="2/hour",
    )


def logged_in(app: webtest.TestApp, user_factory: Any, email: str) -> ApiClient:
    user_factory(email)  # no plan: the limits hold without a subscription too
    client = ApiClient(webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"}))
    assert client.login(email).status_int == 200
    return client


def upload(client: ApiClient, png: bytes) -> Any:
    return client.app.post(
        "/api/v1/uploads",
        upload_files=[("file", "a.png", png)],
        headers={"X-CSRF-Token": client.csrf()},
        status="*",
    )


def test_uploads_are_limited_per_user(limited_app, media, db, user_factory, make_image):
    first = logged_in(limited_app, user_factory, "up1@example.com")
    for _ in range(3):
        assert upload(first, make_image("PNG")).status_int == 201
    refused = upload(first, make_image("PNG"))
    assert refused.status_int == 429
    assert refused.json["error"]["code"] == "rate_limited"
    assert "uploads" in refused.json["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 0
    assert count(db, Upload) == 3
    assert len(stored_files(media)) == 3
    # Another user has an allowance of their own.
    other = logged_in(limited_app, user_factory, "up2@example.com")
    assert upload(other, make_image("PNG")).status_int == 201


def test_new_conversations_are_limited_per_user(limited_app, db, user_factory):
    client = logged_in(limited_app, user_factory, "conv@example.com")
    for n in range(3):
        assert client.post("/api/v1/conversations", {"title": f"t{n}"}).status_int == 201
    refused = client.post("/api/v1/conversations", {"title": "one too many"})
    assert refused.status_int == 429
    assert refused.json["error"]["code"] == "rate_limited"
    assert count(db, Conversation) == 3


def test_checkouts_are_limited_per_user_on_both_surfaces(limited_app, db, user_factory):
    client = logged_in(limited_app, user_factory, "pay@example.com")
    for _ in range(2):
        assert client.post("/api/v1/billing/checkout", {"processor": "demo"}).status_int == 201
    refused = client.post("/api/v1/billing/checkout", {"processor": "demo"})
    assert refused.status_int == 429
    page = client.app.post(
        "/billing/checkout",
        {"processor": "demo", "csrf_token": client.csrf()},
        headers={"Accept": "text/html"},
        status="*",
    )
    assert page.status_int == 429
    assert "limit on checkouts" in page.text
    assert count(db, Payment) == 2


# --- uploads nobody used ----------------------------------------------------------------------


def age(db: Any, upload_id: str, days: float) -> None:
    db.execute(
        sa.update(Upload)
        .where(Upload.id == upload_id)
        .values(created_at=utcnow() - dt.timedelta(days=days))
    )
    db.commit()


@pytest.fixture
def paying_client(make_app: Any, media: Path, user_factory: Any, make_cycle: Any) -> ApiClient:
    app = make_app(storage__local__path=str(media))
    user = user_factory("keeper@example.com")
    make_cycle(user)
    client = ApiClient(webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"}))
    assert client.login("keeper@example.com").status_int == 200
    return client


def test_uploads_no_generation_used_within_a_day_are_deleted(paying_client, media, db, make_image):
    client = paying_client
    used, unused, fresh = (upload(client, make_image("PNG")).json["id"] for _ in range(3))
    conversation = client.post("/api/v1/conversations", {}).json["id"]
    submitted = client.post(
        f"/api/v1/conversations/{conversation}/generations",
        {"mode": "image_to_image", "prompt": "a cat", "input_upload_ids": [used]},
    )
    assert submitted.status_int == 202
    age(db, used, 2)
    age(db, unused, 2)
    age(db, fresh, 0.5)

    registry = client.app.app.registry
    assert run_now(registry, delete_unused_uploads) == 1
    db.expire_all()
    assert {str(u.id) for u in db.scalars(sa.select(Upload))} == {used, fresh}
    files = stored_files(media)
    assert len(files) == 2
    assert not any(unused in name for name in files)
    assert client.get(f"/media/{unused}").status_int == 404
    assert run_now(registry, delete_unused_uploads) == 0


def test_an_upload_a_submission_is_taking_is_never_deleted(paying_client, db, engine, make_image):
    upload_id = upload(paying_client, make_image("PNG")).json["id"]
    age(db, upload_id, 2)
    # A submission holds the row (as submit_generation does) while the clean-up runs.
    with engine.connect() as holder:
        transaction = holder.begin()
        holder.execute(sa.select(Upload).where(Upload.id == upload_id).with_for_update())
        assert run_now(paying_client.app.app.registry, delete_unused_uploads) == 0
        transaction.rollback()
    assert count(db, Upload) == 1


# --- orphaned objects -------------------------------------------------------------------------


def test_objects_no_row_names_are_swept_after_a_grace_period(paying_client, media, db, make_image):
    client = paying_client
    registry = client.app.app.registry
    kept = upload(client, make_image("PNG")).json["id"]
    lost = upload(client, make_image("PNG")).json["id"]
    young = upload(client, make_image("PNG")).json["id"]
    # Rows gone without their objects: a clean-up whose deletion failed, a commit that did not.
    db.execute(sa.delete(Upload).where(Upload.id.in_([lost, young])))
    db.commit()
    orphan_of_a_job = media / "generations" / "1" / "0f0e" / "0.png"
    orphan_of_a_job.parent.mkdir(parents=True)
    orphan_of_a_job.write_bytes(b"png")
    two_days_ago = (utcnow() - dt.timedelta(days=2)).timestamp()
    for path in media.rglob("*"):
        if path.is_file() and young not in path.name:
            os.utime(path, (two_days_ago, two_days_ago))

    request = prepare_request(registry)
    with request.tm:
        assert sweep_orphans(request) == 2
    files = stored_files(media)
    assert len(files) == 2
    assert any(kept in name for name in files)
    assert any(young in name for name in files)  # too young to be judged an orphan
    assert client.get(f"/media/{kept}").status_int == 200


@contextlib.contextmanager
def undeletable(folder: Path) -> Iterator[None]:
    """Files in ``folder`` cannot be removed: read-only for a user, immutable for root."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], check=False).returncode != 0:
        pytest.skip("this file system cannot make a folder immutable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_failed_object_deletion_is_caught_by_the_sweep(paying_client, media, db, make_image):
    client = paying_client
    registry = client.app.app.registry
    upload_id = upload(client, make_image("PNG")).json["id"]
    age(db, upload_id, 2)
    (stored,) = media.rglob("*.png")
    # The object cannot be deleted while the clean-up runs: its folder refuses it.
    with undeletable(stored.parent):
        assert run_now(registry, delete_unused_uploads) == 1
    assert stored.exists()
    assert count(db, Upload) == 0
    os.utime(stored, ((utcnow() - dt.timedelta(days=2)).timestamp(),) * 2)
    request = prepare_request(registry)
    with request.tm:
        assert sweep_orphans(request) == 1
    assert not stored.exists()
