"""The OpenAI provider against the fake OpenAI Images server: settings, models and presets, the
requests it sends (JSON generations, multipart edits), what it makes of an answer, its cost
estimate, the key and route checks, and many threads at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from fakes.gemini import JPEG_16x8, make_png
from fakes.openai_images import IMAGE_INPUT_TOKENS, OUTPUT_TOKENS, FakeOpenAI
from nproxy_core.plugins import (
    ImageRequest,
    InputImage,
    InvalidInputError,
    KeyRejectedError,
    Mode,
    PluginSettingError,
    Provider,
    RetryableError,
    TransportError,
)
from nproxy_provider_openai import OpenAIProvider

KEY = "sk-proj-success-0123456789abcdef"


def text_request(resolution: str = "square", **kwargs) -> ImageRequest:
    return ImageRequest(
        mode=Mode.TEXT_TO_IMAGE, prompt="a lighthouse at dusk", resolution=resolution, **kwargs
    )


def edit_request(*inputs: InputImage, resolution: str = "square") -> ImageRequest:
    return ImageRequest(
        mode=Mode.IMAGE_TO_IMAGE, prompt="make it blue", resolution=resolution, inputs=inputs
    )


def png_input(width: int = 4, height: int = 4) -> InputImage:
    return InputImage(make_png(width, height), "image/png")


# --- settings and capabilities -----------------------------------------------------------------


def test_defaults() -> None:
    provider = OpenAIProvider({})
    assert isinstance(provider, Provider)
    assert provider.api_base == "https://api.openai.com/v1"
    assert provider.models == ("gpt-image-1",)
    assert (provider.quality, provider.output_format) == ("medium", "png")
    assert provider.read_timeout == 180
    assert provider.supports_key_check is True
    assert provider.price_per_image == Decimal("0.042")
    assert provider.attempt_deadline > provider.read_timeout + provider.connect_timeout


def test_gpt_image_1_capabilities() -> None:
    [caps] = OpenAIProvider({}).capabilities()
    assert (caps.model, caps.label) == ("gpt-image-1", "GPT Image 1")
    assert caps.modes == (Mode.TEXT_TO_IMAGE, Mode.IMAGE_TO_IMAGE)
    assert caps.resolutions == (
        "square",
        "portrait",
        "landscape",
        "square_low",
        "portrait_low",
        "landscape_low",
        "square_high",
        "portrait_high",
        "landscape_high",
    )
    assert (caps.max_batch, caps.max_input_images, caps.supports_strength) == (4, 16, False)
    assert caps.sizes["square"] == (1024, 1024)
    assert caps.sizes["portrait_high"] == (1024, 1536)
    assert caps.sizes["landscape_low"] == (1536, 1024)
    assert caps.aspect_ratios["landscape"] == "1536:1024"
    assert {k: str(v) for k, v in caps.usd_per_image.items()} == {
        "square": "0.042",
        "portrait": "0.063",
        "landscape": "0.063",
        "square_low": "0.011",
        "portrait_low": "0.016",
        "landscape_low": "0.016",
        "square_high": "0.167",
        "portrait_high": "0.25",
        "landscape_high": "0.25",
    }


def test_quality_setting_decides_the_bare_presets() -> None:
    [caps] = OpenAIProvider({"openai.quality": "high"}).capabilities()
    assert caps.resolutions[:3] == ("square", "portrait", "landscape")
    assert caps.usd_per_image["square"] == Decimal("0.167")
    assert "square_high" not in caps.resolutions
    assert caps.usd_per_image["square_medium"] == Decimal("0.042")


def test_several_models() -> None:
    provider = OpenAIProvider({"openai.models": "gpt-image-1-mini gpt-image-1"})
    mini, full = provider.capabilities()
    assert (mini.model, mini.label) == ("gpt-image-1-mini", "GPT Image 1 Mini")
    assert mini.usd_per_image["square"] == Decimal("0.011")
    assert full.usd_per_image["square"] == Decimal("0.042")
    assert provider.model == "gpt-image-1-mini"
    # An id the table does not know is priced like gpt-image-1 (the safe side).
    [other] = OpenAIProvider({"openai.models": "gpt-image-2"}).capabilities()
    assert (other.label, other.usd_per_image["square_high"]) == ("GPT Image 2", Decimal("0.167"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("openai.timeout_seconds", "soon"),
        ("openai.timeout_seconds", "-1"),
        ("openai.connect_timeout_seconds", "0"),
        ("openai.api_base", "ftp://example.com"),
        ("openai.api_base", "not a url"),
        ("openai.quality", "ultra"),
        ("openai.quality", "auto"),
        ("openai.output_format", "gif"),
        ("openai.price_per_image", "-0.1"),
        ("openai.models", ""),
        ("openai.models", "gpt-image-1 gpt-image-1"),
        ("openai.models", "gpt image/1"),
        ("openai.models", "dall-e-3"),
    ],
)
def test_bad_settings_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(PluginSettingError, match=name.replace(".", r"\.")):
        OpenAIProvider({name: value})


# --- generations -------------------------------------------------------------------------------


def test_generation_round_trip(fake: FakeOpenAI, provider: OpenAIProvider) -> None:
    result = provider.generate(text_request(), api_key=KEY)

    [sent] = fake.requests
    assert (sent.method, sent.path, sent.endpoint) == (
        "POST",
        "/v1/images/generations",
        "generations",
    )
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {
        "model": "gpt-image-1",
        "prompt": "a lighthouse at dusk",
        "n": 1,
        "size": "1024x1024",
        "quality": "medium",
        "output_format": "png",
    }
    image = result.image
    assert (image.mime, image.width, image.height) == ("image/png", 1024, 1024)
    assert image.data == make_png(1024, 1024)
    assert result.usage["output_tokens"] == OUTPUT_TOKENS[(True, "medium")]


@pytest.mark.parametrize(
    ("resolution", "size", "quality"),
    [
        ("square", "1024x1024", "medium"),
        ("portrait", "1024x1536", "medium"),
        ("landscape", "1536x1024", "medium"),
        ("square_low", "1024x1024", "low"),
        ("landscape_high", "1536x1024", "high"),
        ("portrait_low", "1024x1536", "low"),
    ],
)
def test_presets_send_size_and_quality(
    fake: FakeOpenAI, provider: OpenAIProvider, resolution: str, size: str, quality: str
) -> None:
    result = provider.generate(text_request(resolution), api_key=KEY)
    [sent] = fake.requests
    assert (sent.json["size"], sent.json["quality"]) == (size, quality)
    assert f"{result.image.width}x{result.image.height}" == size


@pytest.mark.parametrize(
    ("output_format", "mime"), [("jpeg", "image/jpeg"), ("webp", "image/webp")]
)
def test_output_format(fake: FakeOpenAI, make_provider, output_format: str, mime: str) -> None:
    provider = make_provider({"openai.output_format": output_format})
    result = provider.generate(text_request(), api_key=KEY)
    assert fake.requests[0].json["output_format"] == output_format
    assert (result.image.mime, result.image.width) == (mime, 1024)


def test_named_model_is_sent(fake: FakeOpenAI, make_provider) -> None:
    provider = make_provider({"openai.models": "gpt-image-1 gpt-image-1-mini"})
    provider.generate(text_request(model="gpt-image-1-mini"), api_key=KEY)
    provider.generate(text_request(model=None), api_key=KEY)
    assert [r.json["model"] for r in fake.requests] == ["gpt-image-1-mini", "gpt-image-1"]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (text_request("huge"), "resolution 'huge' is not one of"),
        (text_request(model="dall-e-2"), "model 'dall-e-2' is not offered"),
        (
            ImageRequest(mode=Mode.TEXT_TO_IMAGE, prompt="   ", resolution="square"),
            "the prompt is empty",
        ),
        (
            ImageRequest(
                mode=Mode.TEXT_TO_IMAGE, prompt="x", resolution="square", inputs=(png_input(),)
            ),
            "text_to_image takes no reference images",
        ),
        (edit_request(), "needs at least one reference image"),
        (edit_request(*[png_input()] * 17), "at most 16 reference images"),
        (edit_request(InputImage(b"GIF89a", "image/gif")), "PNG, JPEG or WebP, not image/gif"),
    ],
)
def test_bad_requests_fail_before_any_call(
    fake: FakeOpenAI, provider: OpenAIProvider, request_: ImageRequest, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        provider.generate(request_, api_key=KEY)
    assert fake.requests == []


# --- edits -------------------------------------------------------------------------------------


def test_edit_round_trip(fake: FakeOpenAI, provider: OpenAIProvider) -> None:
    first, second = png_input(8, 8), InputImage(JPEG_16x8, "image/jpeg")
    result = provider.generate(
        edit_request(first, second, resolution="landscape_high"), api_key=KEY
    )

    [sent] = fake.requests
    assert (sent.path, sent.endpoint) == ("/v1/images/edits", "edits")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert sent.form == {
        "model": "gpt-image-1",
        "prompt": "make it blue",
        "n": "1",
        "size": "1536x1024",
        "quality": "high",
        "output_format": "png",
    }
    assert sent.files == [
        ("image[]", "image-0.png", "image/png", first.data),
        ("image[]", "image-1.jpg", "image/jpeg", JPEG_16x8),
    ]
    assert (result.image.width, result.image.height) == (1536, 1024)
    assert result.usage["input_tokens_details"]["image_tokens"] == 2 * IMAGE_INPUT_TOKENS


def test_sixteen_inputs_are_accepted(fake: FakeOpenAI, provider: OpenAIProvider) -> None:
    provider.generate(edit_request(*[png_input()] * 16), api_key=KEY)
    assert len(fake.requests[0].files) == 16


# --- cost --------------------------------------------------------------------------------------


def test_cost_from_usage(fake: FakeOpenAI, provider: OpenAIProvider) -> None:
    result = provider.generate(text_request("square_high"), api_key=KEY)
    usage = result.usage
    text = usage["input_tokens_details"]["text_tokens"]
    expected = (Decimal(text) * 5 + Decimal(4160) * 40) / 1_000_000
    assert result.estimated_cost == expected.quantize(Decimal("0.000001"))
    # 4,160 output tokens at 40 USD per million: the published 0.167 for a high square.
    assert abs(result.estimated_cost - Decimal("0.167")) < Decimal("0.001")


def test_cost_prices_image_inputs(provider: OpenAIProvider) -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 1000,
        "input_tokens_details": {"text_tokens": 200, "image_tokens": 800},
    }
    # 200 x 5 + 800 x 10 + 1000 x 40 = 49,000 per million.
    assert provider.estimate_cost(usage) == Decimal("0.049000")
    assert provider.estimate_cost({"input_tokens": 100}) == Decimal("0.001000")  # as image input
    assert provider.estimate_cost({}) is None
    with pytest.raises(ValueError, match="not offered"):
        provider.estimate_cost(usage, model="dall-e-3")


def test_cost_without_usage_is_the_preset_price(
    fake: FakeOpenAI, provider: OpenAIProvider, make_provider
) -> None:
    fake.behave(KEY, "no_usage")
    assert provider.generate(text_request("portrait_high"), api_key=KEY).estimated_cost == Decimal(
        "0.25"
    )
    fixed = make_provider({"openai.price_per_image": "0.05"})
    assert fixed.generate(text_request(), api_key=KEY).estimated_cost == Decimal("0.05")


# --- the key check and the route check ---------------------------------------------------------


def test_key_check(fake: FakeOpenAI, provider: OpenAIProvider) -> None:
    check = provider.check_key(api_key=KEY)
    assert check.http_status == 200
    assert check.detail == "gpt-image-1 is available to this key, owned by system"
    [sent] = fake.requests
    assert (sent.method, sent.path) == ("GET", "/v1/models/gpt-image-1")
    assert sent.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("invalid_key-0123456789", KeyRejectedError),
        ("region-0123456789", KeyRejectedError),
        ("server_error-0123456789", RetryableError),
    ],
)
def test_key_check_failures(provider: OpenAIProvider, key: str, error: type) -> None:
    with pytest.raises(error):
        provider.check_key(api_key=key)


def test_key_check_refuses_a_key_that_cannot_be_a_header(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    for key in ("", "two words", "k\u00e9y"):
        with pytest.raises(KeyRejectedError, match="characters a key cannot have"):
            provider.check_key(api_key=key)
        with pytest.raises(KeyRejectedError):
            provider.generate(text_request(), api_key=key)
    assert fake.requests == []


def test_route_check_direct_and_through_a_proxy(
    fake: FakeOpenAI, provider: OpenAIProvider, http_proxy: str, unused_port: int
) -> None:
    assert provider.check_route(proxy_url=None) == "OpenAI answered HTTP 401 over direct"
    answer = provider.check_route(proxy_url=http_proxy)
    assert answer.startswith("OpenAI answered HTTP 401 over proxy http://127.0.0.1:")
    assert [r.api_key for r in fake.requests] == [None, None]
    assert fake.requests[1].headers["via"].startswith("1.1 proxy.py")
    with pytest.raises(TransportError):
        provider.check_route(proxy_url=f"http://127.0.0.1:{unused_port}")


def test_generation_through_a_proxy(
    fake: FakeOpenAI, provider: OpenAIProvider, http_proxy: str
) -> None:
    result = provider.generate(edit_request(png_input()), api_key=KEY, proxy_url=http_proxy)
    assert result.image.width == 1024
    assert fake.requests[0].headers["via"].startswith("1.1 proxy.py")


# --- threads -----------------------------------------------------------------------------------


def test_concurrent_calls_each_get_their_own_answer(fake: FakeOpenAI, provider: OpenAIProvider):
    """24 calls at once from 24 threads, mixing presets, modes and keys: every answer matches
    its own request, and the fake saw them overlap."""
    resolutions = ["square", "portrait", "landscape", "square_high", "landscape_low", "portrait"]
    start = threading.Barrier(24)

    def one(n: int):
        resolution = resolutions[n % len(resolutions)]
        request = (
            edit_request(png_input(4 + n, 4), resolution=resolution)
            if n % 3 == 0
            else text_request(resolution)
        )
        start.wait()
        return resolution, provider.generate(request, api_key=f"{KEY}-{n}")

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(one, range(24)))

    sizes = {"square": (1024, 1024), "portrait": (1024, 1536), "landscape": (1536, 1024)}
    for resolution, result in results:
        shape = resolution.split("_")[0]
        assert (result.image.width, result.image.height) == sizes[shape]
    assert len(fake.requests) == 24
    assert {r.api_key for r in fake.requests} == {f"{KEY}-{n}" for n in range(24)}
    edits = [r for r in fake.requests if r.endpoint == "edits"]
    assert len(edits) == 8
    assert fake.max_in_flight > 1
