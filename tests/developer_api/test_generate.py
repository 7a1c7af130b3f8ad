"""``POST /v1/generate`` end to end through RabbitMQ and a real worker (DESIGN 4.10): the
answer waits for the images, or says 202 with where to poll; the chat's quota rules, exactly."""

from __future__ import annotations

import base64
import io
import time
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from PIL import Image

from nproxy_core.billing.models import Plan
from nproxy_core.storage import IMediaLinks
from nproxy_core.wiring import find_service

pytestmark = pytest.mark.slow


def png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def app(make_app, worker_settings, request):
    if "worker" in request.fixturenames:
        # Its jobs go to the module's worker (the others' stay queued, or meet their own).
        module_worker = request.getfixturevalue("module_worker")
        return make_app(**{**worker_settings, "celery.broker_url": module_worker.broker_url})
    return make_app(**worker_settings)


@pytest.fixture
def worker(app, add_key, module_worker, db):
    add_key(app.app.registry, "demo-key-api")
    try:
        yield module_worker.acquire()
    finally:
        module_worker.release()


def local(url: str) -> str:
    """An absolute image URL as a path for WebTest (the public URL's host is localhost)."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "localhost", url
    return f"{parts.path}?{parts.query}"


def test_generate_answers_200_with_signed_images_that_work_without_cookies(
    app, worker, developer_factory
):
    dev = developer_factory(app)
    answer = dev.generate({"prompt": "a red bicycle", "size": "1280x896", "n": 2})
    assert answer.status_int == 200, answer.text
    body = answer.json
    assert body["status"] == "succeeded"
    assert body["prompt"] == "a red bicycle"
    assert body["error"] is None and body["created_at"]
    assert len(body["images"]) == 2
    # Headers on every answer: the rate limit and the quota bucket, never a count.
    assert answer.headers["X-RateLimit-Limit"] == "60"
    assert answer.headers["X-RateLimit-Remaining"] == "59"
    assert int(answer.headers["X-RateLimit-Reset"]) > time.time()
    assert answer.headers["X-Quota-Bucket"] == "100"

    anonymous = app.__class__(app.app, extra_environ={"HTTP_HOST": "localhost"})
    for image in body["images"]:
        fetched = anonymous.get(local(image["url"]))
        assert fetched.content_type == "image/png"
        assert Image.open(io.BytesIO(fetched.body)).size == (512, 384)  # nearest preset: 4:3
    # The same generation through GET, and the key's usage.
    again = dev.get(f"/v1/generations/{body['id']}")
    assert again.status_int == 200 and again.json["status"] == "succeeded"
    usage = dev.get("/v1/usage?days=7").json
    assert usage["days"][-1]["images"] == 2 and usage["days"][-1]["failures"] == 0
    assert len(usage["days"]) == 7
    assert "limit" not in usage and "remaining" not in str(usage)


def test_a_slow_provider_answers_202_with_a_location_to_poll(
    app, add_key, start_worker, developer_factory
):
    add_key(app.app.registry, "demo-key-slow")
    start_worker(demo__delay_seconds="3")
    dev = developer_factory(app)
    started = time.monotonic()
    answer = dev.generate({"prompt": "slow one"}, Prefer="wait=1")
    assert answer.status_int == 202, answer.text
    assert 1 <= time.monotonic() - started < 2.5
    assert answer.json["status"] in ("queued", "running") and answer.json["images"] == []
    location = answer.headers["Location"]
    assert location == f"http://localhost/v1/generations/{answer.json['id']}"
    deadline = time.monotonic() + 30
    while (polled := dev.get(urlsplit(location).path)).json["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert len(polled.json["images"]) == 1


def test_b64_json_and_image_to_image_from_a_base64_input(app, worker, developer_factory):
    dev = developer_factory(app)
    answer = dev.generate(
        {
            "prompt": "make it blue",
            "input_images": [base64.b64encode(png()).decode()],
            "strength": 0.4,
            "aspect_ratio": "512:512",
            "response_format": "b64_json",
        }
    )
    assert answer.status_int == 200, answer.text
    (image,) = answer.json["images"]
    decoded = Image.open(io.BytesIO(base64.b64decode(image["b64_json"])))
    assert decoded.size == (512, 512)
    assert "url" not in image


def test_bad_requests_name_the_field_and_change_nothing(app, developer_factory, db):
    from nproxy_core.generation.models import Generation

    dev = developer_factory(app)
    cases = [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "n": 9}, "n"),
        ({"prompt": "x", "size": "999x999"}, "size"),
        ({"prompt": "x", "aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"prompt": "x", "size": "1024x1024", "aspect_ratio": "512:512"}, "size"),
        ({"prompt": "x", "input_images": ["not base64!"]}, "input_images"),
        ({"prompt": "x", "input_images": [base64.b64encode(b"GIF89a").decode()]}, "input_images"),
        ({"prompt": "x", "response_format": "jpeg"}, "response_format"),
        ({"prompt": "x", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        answer = dev.generate(body)
        assert answer.status_int == 400, (body, answer.text)
        assert field in answer.json["error"]["fields"], (body, answer.json)
    for prefer in ("wait=soon", "wait=-1", "wait=nan"):
        answer = dev.generate({"prompt": "x"}, Prefer=prefer)
        assert answer.status_int == 400, (prefer, answer.text)
        assert "Prefer" in answer.json["error"]["fields"], (prefer, answer.json)
    assert db.query(Generation).count() == 0


def test_a_revoked_or_unknown_key_is_401_at_once(app, developer_factory):
    dev = developer_factory(app)
    token = dev.customer.api.csrf()
    dev.customer.api.app.delete(f"/api/v1/api-keys/{dev.key_id}", headers={"X-CSRF-Token": token})
    for headers in (
        dev.headers(),
        {"Authorization": "Bearer npx_" + "A" * 40},
        {"Authorization": "Basic abc"},
        {},
    ):
        answer = dev.app.post_json("/v1/generate", {"prompt": "x"}, headers=headers, status="*")
        assert answer.status_int == 401
        assert answer.json["error"]["code"] == "invalid_api_key"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_another_users_generation_is_404(app, worker, developer_factory):
    alice, bob = developer_factory(app), developer_factory(app)
    made = alice.generate({"prompt": "mine"}).json["id"]
    assert bob.get(f"/v1/generations/{made}").status_int == 404
    assert bob.get("/v1/generations/not-an-id").status_int == 404


def test_no_subscription_and_an_exhausted_quota_are_402(app, developer_factory, make_cycle):
    broke = developer_factory(app, request_limit=None)
    answer = broke.generate({"prompt": "x"})
    assert (answer.status_int, answer.json["error"]["code"]) == (402, "no_active_subscription")
    assert answer.headers["X-Quota-Bucket"] == "0"
    spent = developer_factory(app, request_limit=None)
    make_cycle(spent.customer.user, request_limit=5, used=5)
    answer = spent.generate({"prompt": "x"})
    assert (answer.status_int, answer.json["error"]["code"]) == (402, "quota_exhausted")


def test_the_rate_limit_answers_429_with_retry_after_and_headers(
    make_app, worker_settings, developer_factory
):
    app = make_app(**worker_settings, nproxy__api__rate_limit="3/minute")
    dev = developer_factory(app)
    remaining = [dev.get("/v1/usage").headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = dev.get("/v1/usage")
    assert refused.status_int == 429
    assert refused.json["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_a_plans_api_rate_limit_replaces_the_default_for_its_users(
    make_app, worker_settings, developer_factory, db
):
    app = make_app(**worker_settings, nproxy__api__rate_limit="3/minute")
    plan = db.scalar(sa.select(Plan).where(Plan.code == "monthly"))
    plan.api_rate_limit = "2/minute"
    db.commit()
    dev = developer_factory(app)
    first = dev.get("/v1/usage")
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert dev.get("/v1/usage").status_int == 200
    assert dev.get("/v1/usage").status_int == 429
    # Without a cycle of that plan, the default applies.
    broke = developer_factory(app, request_limit=None)
    assert broke.get("/v1/usage").headers["X-RateLimit-Limit"] == "3"


def test_models_tell_a_key_what_each_image_costs(app, developer_factory, db):
    dev = developer_factory(app)
    answer = dev.get("/v1/models")
    assert answer.status_int == 200
    assert "X-Quota-Bucket" in answer.headers
    models = {m["model"]: m for m in answer.json["models"]}
    assert models["demo-pro"]["units"]["square_2k"] == 6
    assert models["demo-image-1"]["allowed"] is True


def test_unfinished_jobs_per_key_are_limited(make_app, worker_settings, developer_factory):
    app = make_app(**worker_settings, nproxy__api__max_concurrent_jobs="2")
    dev = developer_factory(app)  # no worker: the jobs stay queued
    for _ in range(2):
        assert dev.generate({"prompt": "x"}, Prefer="wait=0").status_int == 202
    refused = dev.generate({"prompt": "x"}, Prefer="wait=0")
    assert refused.status_int == 429
    assert "unfinished" in refused.json["error"]["message"]
    assert refused.headers["Retry-After"]


def test_an_idempotency_key_replays_the_same_request_and_refuses_another(app, developer_factory):
    dev = developer_factory(app)
    first = dev.generate({"prompt": "once"}, Prefer="wait=0", **{"Idempotency-Key": "k-1"})
    again = dev.generate({"prompt": "once"}, Prefer="wait=0", **{"Idempotency-Key": "k-1"})
    assert first.status_int == again.status_int == 202
    assert first.json["id"] == again.json["id"]
    other = dev.generate({"prompt": "twice"}, Prefer="wait=0", **{"Idempotency-Key": "k-1"})
    assert other.status_int == 422
    assert other.json["error"]["code"] == "idempotency_mismatch"


def test_a_signed_image_url_stops_working_when_it_expires_or_is_tampered_with(
    app, worker, developer_factory
):
    dev = developer_factory(app)
    image_id = urlsplit(dev.generate({"prompt": "x"}).json["images"][0]["url"]).path.split("/")[-1]
    links = find_service(app.app.registry, IMediaLinks)
    anonymous = app.__class__(app.app, extra_environ={"HTTP_HOST": "localhost"})

    assert anonymous.get(local(links.signed_url(image_id, 60))).status_int == 200
    expired = anonymous.get(local(links.signed_url(image_id, -1)), status="*")
    assert expired.status_int == 403 and "expired" in expired.text
    good = local(links.signed_url(image_id, 60))
    tampered = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert anonymous.get(tampered, status="*").status_int == 404
    longer = good.replace("expires=", "expires=9")
    assert anonymous.get(longer, status="*").status_int == 404
    assert anonymous.get(f"/media/{image_id}", status="*").status_int == 404
