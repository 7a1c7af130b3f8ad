"""The OpenAI-compatible endpoints (DESIGN 4.13) through the official ``openai`` package, against
the app served over HTTP with a real worker on RabbitMQ: images made, units charged as
``/v1/generate`` charges them, and every refusal one of the SDK's own exception classes, with
nothing left behind."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
import waitress.server
from PIL import Image

from live_support import stop_server
from nproxy_core.billing.models import BillingCycle, Plan
from nproxy_core.developer_api.openai_compat import GenerationFailed, choose_preset, openai_error
from nproxy_core.generation.models import Generation
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.storage import IStorage
from nproxy_core.uploads.models import Upload
from nproxy_core.wiring import find_service
from nproxy_provider_openai import OpenAIProvider

pytestmark = pytest.mark.slow


def png(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 30, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


class Live:
    """The app under test behind waitress on 127.0.0.1, its public URL its own address, so
    the signed image URLs it gives can be fetched."""

    def __init__(self, make_app: Callable[..., Any], settings: dict[str, Any]) -> None:
        self.server = waitress.server.create_server(
            lambda environ, start: self.app.app(environ, start),
            host="127.0.0.1",
            port=0,
            threads=8,
        )
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        overrides = {k.replace(".", "__"): v for k, v in settings.items()}
        self.app = make_app(**{**overrides, "nproxy__public_url": self.url})
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except OSError:
            if not self.stopping:  # closing the socket ends the loop's select with EBADF
                raise

    def client(self, key: str, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, **kw)

    def stop(self) -> None:
        self.stopping = True
        stop_server(self.server, self.thread)


@pytest.fixture
def serve(make_app, worker_settings) -> Iterator[Callable[..., Live]]:
    started: list[Live] = []

    def start(**overrides: Any) -> Live:
        settings = {**worker_settings, **{k.replace("__", "."): v for k, v in overrides.items()}}
        live = Live(make_app, settings)
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


@pytest.fixture
def live(serve, add_key, module_worker, db) -> Iterator[Live]:
    # Its jobs go to the module's worker (the others' stay queued).
    served = serve(celery__broker_url=module_worker.broker_url)
    add_key(served.app.app.registry, "demo-key-openai")
    try:
        module_worker.acquire()
        yield served
    finally:
        module_worker.release()


def cycle(db, cycle_id) -> BillingCycle:
    db.expire_all()
    return db.get(BillingCycle, cycle_id)


def stored_uploads(live: Live, user_id: int) -> set[str]:
    """The keys of the user's upload objects (storage outlives a test's database rows)."""
    storage = find_service(live.app.app.registry, IStorage)
    return {item.key for item in storage.list_keys(f"uploads/{user_id}/")}


def fetched_size(url: str) -> tuple[int, int]:
    answer = httpx.get(url)  # no cookie, no key: the URL is signed
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(answer.content)).size


def test_generate_returns_n_images_as_urls_or_base64_charged_in_units(live, developer_factory, db):
    dev = developer_factory(live.app)
    client = live.client(dev.key)
    raw = client.images.with_raw_response.generate(
        model="demo-image-1", prompt="a red bicycle", n=2, size="1024x1024"
    )
    assert raw.status_code == 200
    # The developer API's headers, on this front too.
    assert raw.headers["X-RateLimit-Limit"] == "60"
    assert raw.headers["X-Quota-Bucket"] == "100"
    answer = raw.parse()
    assert abs(answer.created - time.time()) < 60
    assert len(answer.data) == 2
    assert {fetched_size(image.url) for image in answer.data} == {(512, 512)}
    assert all(image.b64_json is None for image in answer.data)
    assert cycle(db, dev.customer.cycle.id).used == 2  # Demo: 1 unit an image

    wide = client.images.generate(
        model="demo:demo-image-1", prompt="a wide one", size="1536x1024", response_format="b64_json"
    )
    (image,) = wide.data
    assert image.url is None
    assert Image.open(io.BytesIO(base64.b64decode(image.b64_json))).size == (512, 384)

    # Demo Pro costs 3 units an image, as through /v1/generate; quality high is its 2K preset.
    client.images.generate(model="demo-pro", prompt="pro", n=2, size="1024x1024")
    assert cycle(db, dev.customer.cycle.id).used == 3 + 6
    high = client.images.generate(
        model="demo-pro", prompt="pro, high", size="1024x1536", quality="high"
    )
    assert fetched_size(high.data[0].url) == (384 * 4, 512 * 4)
    assert cycle(db, dev.customer.cycle.id).used == 9 + 6
    assert cycle(db, dev.customer.cycle.id).reserved == 0


def test_edit_makes_an_image_from_one_or_several_uploaded_images(
    live, developer_factory, db, tmp_path
):
    dev = developer_factory(live.app)
    stored_before = stored_uploads(live, dev.customer.user.id)
    client = live.client(dev.key)
    source = tmp_path / "source.png"
    source.write_bytes(png())
    with source.open("rb") as file:
        answer = client.images.edit(image=file, prompt="make it blue", model="demo-image-1")
    (image,) = answer.data
    assert fetched_size(image.url) == (512, 512)

    # Several images (the SDK sends them as image[]), b64_json, a size mapped to a tall preset.
    answer = client.images.edit(
        image=[("a.png", png(), "image/png"), ("b.png", png(colour=(0, 90, 200)), "image/png")],
        prompt="blend them",
        size="1024x1536",
        response_format="b64_json",
    )
    (image,) = answer.data
    assert Image.open(io.BytesIO(base64.b64decode(image.b64_json))).size == (384, 512)
    db.expire_all()
    generations = db.scalars(sa.select(Generation).order_by(Generation.created_at)).all()
    assert [len(g.message.input_upload_ids) for g in generations] == [1, 2]
    assert len(stored_uploads(live, dev.customer.user.id) - stored_before) == 3
    assert {str(g.message.mode) for g in generations} == {"image_to_image"}
    assert cycle(db, dev.customer.cycle.id).used == 2


def test_a_revoked_or_unknown_key_is_the_sdks_authentication_error(serve, developer_factory):
    live = serve()
    dev = developer_factory(live.app)
    token = dev.customer.api.csrf()
    dev.customer.api.app.delete(f"/api/v1/api-keys/{dev.key_id}", headers={"X-CSRF-Token": token})
    for key in (dev.key, "npx_" + "A" * 40):
        with pytest.raises(openai.AuthenticationError) as refused:
            live.client(key, max_retries=0).images.generate(prompt="x")
        assert refused.value.status_code == 401
        assert refused.value.code == "invalid_api_key"
        assert refused.value.type == "invalid_request_error"
        assert refused.value.body["param"] is None


def test_no_subscription_or_a_used_up_quota_is_insufficient_quota(
    serve, developer_factory, make_cycle, db
):
    live = serve()
    broke = developer_factory(live.app, request_limit=None)
    spent = developer_factory(live.app, request_limit=None)
    spent_cycle = make_cycle(spent.customer.user, request_limit=5, used=5)
    for dev in (broke, spent):
        client = live.client(dev.key)  # retries allowed: the answer says not to retry
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError) as refused:
            client.images.generate(prompt="x")
        assert time.monotonic() - started < 2, "the SDK retried a used-up quota"
        assert refused.value.code == "insufficient_quota"
        assert refused.value.type == "insufficient_quota"
        assert refused.value.response.headers["x-should-retry"] == "false"
    assert db.query(Generation).count() == 0
    assert cycle(db, spent_cycle.id).reserved == 0


def test_the_per_key_rate_limit_is_the_sdks_rate_limit_error(serve, developer_factory):
    live = serve(nproxy__api__rate_limit="2/minute")
    dev = developer_factory(live.app)
    client = live.client(dev.key, max_retries=0)
    for _ in range(2):
        with pytest.raises(openai.BadRequestError):
            client.images.generate(prompt="x", size="wide")  # counted all the same
    with pytest.raises(openai.RateLimitError) as refused:
        client.images.generate(prompt="x")
    assert refused.value.code == "rate_limit_exceeded"
    assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 60
    assert refused.value.response.headers["X-RateLimit-Remaining"] == "0"


def test_bad_requests_name_the_param_and_change_nothing(serve, developer_factory, db):
    live = serve()
    dev = developer_factory(live.app)
    stored_before = stored_uploads(live, dev.customer.user.id)
    client = live.client(dev.key, max_retries=0)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"prompt": "x", "size": "huge"}, "size"),
        ({"prompt": "x", "size": "0x1024"}, "size"),
        ({"prompt": "x", "quality": "high"}, "quality"),  # Demo has one preset per shape
        ({"prompt": "x", "quality": "ultra"}, "quality"),
        ({"prompt": "x", "n": 9}, "n"),
        ({"prompt": "x", "n": 0}, "n"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "response_format": "jpeg"}, "response_format"),
        ({"prompt": "x", "extra_body": {"colour": "red"}}, "colour"),
        ({"prompt": "x", "model": 7}, "model"),
    ]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(**kwargs)
        assert refused.value.status_code == 400
        assert refused.value.body["param"] == param, (kwargs, refused.value.body)
        assert refused.value.type == "invalid_request_error"
        assert refused.value.body["message"]

    with pytest.raises(openai.NotFoundError) as missing:
        client.images.generate(prompt="x", model="dall-e-3")
    assert (missing.value.code, missing.value.body["param"]) == ("model_not_found", "model")
    assert "demo-image-1" in missing.value.body["message"]

    # An edit: no image, a file that is not an image, too many images for the model.
    for body in ({"data": {"prompt": "x"}}, {"files": [("prompt", (None, b"x"))]}):
        bare = httpx.post(
            f"{live.url}/v1/images/edits", headers={"Authorization": f"Bearer {dev.key}"}, **body
        )
        assert bare.status_code == 400
        assert bare.json()["error"]["param"] == "image", bare.text
    for images in ([("a.gif", b"GIF89a not really", "image/gif")], [png()] * 4):
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.edit(image=images, prompt="x")
        assert refused.value.body["param"] == "image", refused.value.body

    assert db.query(Generation).count() == 0
    assert db.query(Upload).count() == 0
    assert stored_uploads(live, dev.customer.user.id) == stored_before
    assert cycle(db, dev.customer.cycle.id).reserved == 0


def test_a_model_the_plan_leaves_out_is_permission_denied(serve, developer_factory, db):
    plan = db.scalar(sa.select(Plan).where(Plan.code == "monthly"))
    plan.models = ["demo-image-1"]
    db.commit()
    live = serve()
    dev = developer_factory(live.app)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        live.client(dev.key, max_retries=0).images.generate(prompt="x", model="demo-pro")
    assert refused.value.code == "plan_excludes_model"
    assert "demo-pro" in refused.value.body["message"]
    assert db.query(Generation).count() == 0


def test_a_job_not_done_within_the_wait_is_a_408_the_sdk_does_not_send_again(
    serve, developer_factory, db
):
    live = serve(nproxy__api__max_wait_seconds="1")  # no worker: the job stays queued
    dev = developer_factory(live.app)
    client = live.client(dev.key)  # the SDK's default retries
    with pytest.raises(openai.APIStatusError) as late:
        client.images.generate(prompt="slow")
    assert late.value.status_code == 408
    assert (late.value.type, late.value.code) == ("timeout", "generation_timeout")
    (generation,) = db.scalars(sa.select(Generation)).all()  # sent once, not retried
    assert str(generation.id) in late.value.body["message"]
    assert late.value.response.headers["Location"].endswith(f"/v1/generations/{generation.id}")


def test_an_idempotency_key_makes_one_generation_of_two_requests(live, developer_factory, db):
    dev = developer_factory(live.app)
    client = live.client(dev.key)
    headers = {"Idempotency-Key": "same-1"}
    first = client.images.generate(prompt="once", extra_headers=headers)
    again = client.images.generate(prompt="once", extra_headers=headers)
    assert [d.url.split("?")[0] for d in first.data] == [d.url.split("?")[0] for d in again.data]
    assert db.query(Generation).count() == 1
    with pytest.raises(openai.UnprocessableEntityError) as other:
        client.images.generate(prompt="twice", extra_headers=headers)
    assert other.value.code == "idempotency_mismatch"


def test_quality_maps_onto_the_tiers_of_a_shape_and_failures_onto_openai_codes(app):
    providers = find_service(app.app.registry, IPlugins).providers
    pro = next(m for m in providers["demo"].capabilities() if m.model == "demo-pro")
    assert choose_preset(pro, "1024x1024", None) == "square"
    assert choose_preset(pro, "1024x1024", "standard") == "square"
    assert choose_preset(pro, "1024x1024", "low") == "square"
    assert choose_preset(pro, "1024x1024", "medium") == "square"
    assert choose_preset(pro, "1792x1024", "hd") == "wide_2k"
    assert choose_preset(pro, "auto", "high") == "square_2k"
    assert choose_preset(pro, None, None) is None
    # OpenAI's own presets: one size, three qualities priced apart; the bare one is the
    # provider's default quality (openai.quality), wherever it falls.
    for default, medium, high in (
        ("medium", "landscape", "landscape_high"),
        ("high", "landscape_medium", "landscape"),
    ):
        (gpt,) = OpenAIProvider({"openai.quality": default}).capabilities()
        assert choose_preset(gpt, "1536x1024", "low") == "landscape_low"
        assert choose_preset(gpt, "1536x1024", "medium") == medium
        assert choose_preset(gpt, "1536x1024", "high") == high
        assert choose_preset(gpt, "1536x1024", "auto") == "landscape"
    status, kind, code, _ = openai_error(GenerationFailed("refused", "content_policy", None))
    assert (status, kind, code) == (400, "invalid_request_error", "content_policy_violation")
    status, kind, code, _ = openai_error(GenerationFailed("down", "provider_unavailable", None))
    assert (status, kind, code) == (503, "server_error", "provider_unavailable")
