"""The fake Gemini server itself: other suites rely on its checks, concurrency and shutdown."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from fakes.gemini import FakeGemini, Reply

BODY = {
    "contents": [{"parts": [{"text": "a cat"}]}],
    "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "1:1"}},
}
FLASH = "/models/gemini-2.5-flash-image:generateContent"


def post(fake: FakeGemini, key: str | None = "k", body=BODY, path: str = FLASH) -> httpx.Response:
    headers = {"x-goog-api-key": key} if key else {}
    return httpx.post(fake.base_url + path, json=body, headers=headers, trust_env=False)


def test_success_shape(fake: FakeGemini) -> None:
    answer = post(fake).json()
    (candidate,) = answer["candidates"]
    assert candidate["finishReason"] == "STOP"
    assert candidate["content"]["parts"][0]["inlineData"]["mimeType"] == "image/png"
    assert answer["usageMetadata"]["candidatesTokenCount"] == 1290
    assert fake.requests[0].behaviour == "success"


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"key": None}, 403),
        ({"path": "/models/x:predict"}, 404),
        ({"body": {"contents": []}}, 400),
        ({"body": {**BODY, "generationConfig": {"imageConfig": {"aspectRatio": "1:1"}}}}, 400),
        (
            {
                "body": {
                    **BODY,
                    "generationConfig": {
                        "responseModalities": ["IMAGE"],
                        "imageConfig": {"aspectRatio": "7:5"},
                    },
                }
            },
            400,
        ),
        (
            {
                "body": {
                    **BODY,
                    "generationConfig": {
                        "responseModalities": ["IMAGE"],
                        "imageConfig": {"imageSize": "2K"},
                    },
                }
            },
            400,
        ),
    ],
)
def test_malformed_requests_are_refused_like_google(fake: FakeGemini, kwargs, status) -> None:
    assert post(fake, **kwargs).status_code == status


def test_image_size_on_pro(fake: FakeGemini) -> None:
    body = {
        **BODY,
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
        },
    }
    assert post(
        fake, body=body, path="/models/gemini-3-pro-image-preview:generateContent"
    ).is_success


def test_behaviour_choice(fake: FakeGemini) -> None:
    fake.behave("mine", "unavailable")
    fake.behave("custom", lambda request, **_: Reply(418, {"teapot": request.api_key}))
    assert post(fake, key="mine").status_code == 503
    assert post(fake, key="rate_limited-7").status_code == 429
    assert post(fake, key="nobody").status_code == 200
    assert post(fake, key="custom").json() == {"teapot": "custom"}
    assert [r.behaviour for r in fake.requests] == [
        "unavailable",
        "rate_limited",
        "success",
        "<lambda>",
    ]
    assert [r.api_key for r in fake.requests_for("mine")] == ["mine"]
    with pytest.raises(ValueError, match="unknown behaviour"):
        fake.behave("k", "no_such_thing")
    fake.clear()
    assert fake.requests == []


def test_default_behaviour() -> None:
    with FakeGemini(default="invalid_key") as fake:
        assert post(fake, key="whatever").status_code == 400
        assert post(fake, key="success-1").status_code == 200


def test_concurrent_requests(fake: FakeGemini) -> None:
    fake.behave("k", "slow", delay=0.3)
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: post(fake).status_code, range(20)))
    assert statuses == [200] * 20
    assert time.monotonic() - started < 2  # served in parallel, not one after another


def test_stop_does_not_wait_for_slow_handlers() -> None:
    fake = FakeGemini().start()
    fake.behave("k", "slow", delay=30)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(post, fake)
        while not fake.requests:
            time.sleep(0.01)
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(httpx.RemoteProtocolError):
            future.result(timeout=5)
