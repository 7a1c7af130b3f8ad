"""The Nano Banana provider against the fake Gemini server: settings, capabilities, the request
it sends, and what it makes of a successful answer."""

from __future__ import annotations

import base64
import io
from decimal import Decimal

import pytest
from PIL import Image

from fakes.gemini import FakeGemini, JPEG_16x8, make_png
from nproxy_core.plugins import (
    ImageRequest,
    InputImage,
    InvalidInputError,
    Mode,
    PluginSettingError,
    Provider,
)
from nproxy_provider_nanobanana import NanoBananaProvider
from nproxy_provider_nanobanana.presets import ASPECT_RATIOS

PRO = "gemini-3-pro-image-preview"


def text_request(resolution: str = "square", **kwargs) -> ImageRequest:
    return ImageRequest(
        mode=Mode.TEXT_TO_IMAGE, prompt="a lighthouse at dusk", resolution=resolution, **kwargs
    )


def png_input(width: int = 4, height: int = 4) -> InputImage:
    return InputImage(make_png(width, height), "image/png")


# --- settings and capabilities -----------------------------------------------------------------


def test_defaults() -> None:
    provider = NanoBananaProvider({})
    assert isinstance(provider, Provider)
    assert provider.api_base == "https://generativelanguage.googleapis.com/v1beta"
    assert provider.model == "gemini-2.5-flash-image"
    assert provider.read_timeout == 120
    assert provider.connect_timeout == 10
    assert provider.output_price == Decimal("30")
    assert provider.attempt_deadline > provider.read_timeout + provider.connect_timeout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("nanobanana.timeout_seconds", "soon"),
        ("nanobanana.timeout_seconds", "-1"),
        ("nanobanana.timeout_seconds", "nan"),
        ("nanobanana.connect_timeout_seconds", "0"),
        ("nanobanana.api_base", "ftp://example.com"),
        ("nanobanana.api_base", "not a url"),
        ("nanobanana.model", "gemini image"),
        ("nanobanana.price_per_million_output_tokens", "thirty"),
        ("nanobanana.price_per_million_output_tokens", "-5"),
        ("nanobanana.price_per_million_input_tokens", "Infinity"),
        ("nanobanana.response_modalities", "TEXT"),
    ],
)
def test_malformed_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(PluginSettingError, match=name.replace(".", r"\.")):
        NanoBananaProvider({name: value})


def test_flash_capabilities() -> None:
    caps = NanoBananaProvider({}).capabilities()[0]
    assert caps.model == "gemini-2.5-flash-image"
    assert set(caps.modes) == {Mode.TEXT_TO_IMAGE, Mode.IMAGE_TO_IMAGE}
    assert caps.max_input_images == 3
    assert caps.max_batch == 4
    assert caps.supports_strength is True
    assert caps.resolutions[0] == "square"
    assert set(caps.resolutions) == set(ASPECT_RATIOS)
    assert sorted(ASPECT_RATIOS.values()) == sorted(
        ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
    )


def test_pro_capabilities_add_sizes_and_prices() -> None:
    provider = NanoBananaProvider({"nanobanana.models": PRO})
    (caps,) = provider.capabilities()
    assert caps.max_input_images == 14
    assert {"square", "square_2k", "square_4k", "wide_4k", "tall_2k"} <= set(caps.resolutions)
    assert len(caps.resolutions) == 3 * len(ASPECT_RATIOS)
    assert provider.output_price == Decimal("120")


# --- the request on the wire ---------------------------------------------------------------------


def test_text_to_image_wire_format(fake: FakeGemini, provider: NanoBananaProvider) -> None:
    provider.generate(text_request("wide"), api_key="success-abc")
    (sent,) = fake.requests
    assert sent.method == "POST"
    assert sent.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert sent.headers["x-goog-api-key"] == "success-abc"
    assert sent.headers["content-type"] == "application/json"
    assert "key=" not in sent.path  # the key travels in the header only
    assert sent.json == {
        "contents": [{"role": "user", "parts": [{"text": "a lighthouse at dusk"}]}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": "16:9"},
        },
    }


def test_image_to_image_sends_inputs_then_text(
    fake: FakeGemini, provider: NanoBananaProvider
) -> None:
    first, second = png_input(3, 3), InputImage(JPEG_16x8, "image/jpeg")
    request = ImageRequest(
        mode=Mode.IMAGE_TO_IMAGE,
        prompt="make it winter",
        resolution="portrait",
        inputs=(first, second),
    )
    provider.generate(request, api_key="k")
    parts = fake.requests[0].parts
    assert parts[0] == {
        "inlineData": {"mimeType": "image/png", "data": base64.b64encode(first.data).decode()}
    }
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == JPEG_16x8
    assert parts[1]["inlineData"]["mimeType"] == "image/jpeg"
    assert parts[2] == {"text": "make it winter"}
    assert fake.requests[0].aspect_ratio == "3:4"


def test_pro_model_sends_image_size(fake: FakeGemini, make_provider) -> None:
    provider = make_provider({"nanobanana.models": PRO})
    result = provider.generate(text_request("landscape_2k"), api_key="k")
    sent = fake.requests[0]
    assert sent.path == f"/v1beta/models/{PRO}:generateContent"
    assert sent.image_config == {"aspectRatio": "4:3", "imageSize": "2K"}
    assert (result.image.width, result.image.height) == (2368, 1728)

    provider.generate(text_request("square"), api_key="k")
    assert fake.requests[1].image_config == {"aspectRatio": "1:1", "imageSize": "1K"}


def test_flash_never_sends_image_size(fake: FakeGemini, provider: NanoBananaProvider) -> None:
    for resolution in ASPECT_RATIOS:
        provider.generate(text_request(resolution), api_key="k")
    assert all("imageSize" not in r.image_config for r in fake.requests)
    assert [r.aspect_ratio for r in fake.requests] == list(ASPECT_RATIOS.values())


def test_text_and_image_modalities_setting(fake: FakeGemini, make_provider) -> None:
    provider = make_provider({"nanobanana.response_modalities": "image, text"})
    provider.generate(text_request(), api_key="k")
    assert fake.requests[0].json["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]


@pytest.mark.parametrize(
    ("strength", "phrase"),
    [
        (0.0, "almost exactly"),
        (0.4, "Stay close"),
        (0.6, "style and details may change"),
        (1.0, "loose inspiration"),
    ],
)
def test_strength_becomes_prompt_guidance(
    fake: FakeGemini, provider: NanoBananaProvider, strength: float, phrase: str
) -> None:
    request = ImageRequest(
        mode=Mode.IMAGE_TO_IMAGE,
        prompt="add snow",
        resolution="square",
        strength=strength,
        inputs=(png_input(),),
    )
    provider.generate(request, api_key="k")
    text = fake.requests[0].parts[-1]["text"]
    assert text.startswith("add snow\n\n")
    assert phrase in text


def test_strength_is_ignored_for_text_to_image(
    fake: FakeGemini, provider: NanoBananaProvider
) -> None:
    provider.generate(text_request(strength=0.1), api_key="k")
    assert fake.requests[0].parts == [{"text": "a lighthouse at dusk"}]


@pytest.mark.parametrize(
    "request_",
    [
        text_request("huge"),
        text_request("square_2k"),  # a Pro preset on Flash
        ImageRequest(mode=Mode.TEXT_TO_IMAGE, prompt="   ", resolution="square"),
        ImageRequest(mode=Mode.IMAGE_TO_IMAGE, prompt="x", resolution="square"),
        ImageRequest(
            mode=Mode.IMAGE_TO_IMAGE, prompt="x", resolution="square", inputs=(png_input(),) * 4
        ),
        ImageRequest(
            mode=Mode.TEXT_TO_IMAGE, prompt="x", resolution="square", inputs=(png_input(),)
        ),
        ImageRequest(
            mode=Mode.IMAGE_TO_IMAGE,
            prompt="x",
            resolution="square",
            inputs=(InputImage(b"GIF89a", "image/gif"),),
        ),
        ImageRequest(
            mode=Mode.IMAGE_TO_IMAGE,
            prompt="x",
            resolution="square",
            strength=1.5,
            inputs=(png_input(),),
        ),
        text_request(model="gemini-1.0-pro"),
    ],
)
def test_bad_requests_fail_before_any_call(
    fake: FakeGemini, provider: NanoBananaProvider, request_: ImageRequest
) -> None:
    with pytest.raises(InvalidInputError):
        provider.generate(request_, api_key="k")
    assert fake.requests == []


def test_inputs_over_the_request_limit_fail_before_any_call(
    fake: FakeGemini, provider: NanoBananaProvider
) -> None:
    big = InputImage(b"\x89PNG\r\n\x1a\n" + bytes(8 * 1024 * 1024), "image/png")
    request = ImageRequest(
        mode=Mode.IMAGE_TO_IMAGE, prompt="x", resolution="square", inputs=(big, big)
    )
    with pytest.raises(InvalidInputError, match="20 MB"):
        provider.generate(request, api_key="k")
    assert fake.requests == []


# --- the answer ---------------------------------------------------------------------------------


def test_success_returns_image_cost_and_usage(provider: NanoBananaProvider) -> None:
    result = provider.generate(text_request("tall"), api_key="success-1")
    image = result.image
    assert image.mime == "image/png"
    assert (image.width, image.height) == (768, 1344)
    assert Image.open(io.BytesIO(image.data)).size == (768, 1344)
    assert result.usage["candidatesTokenCount"] == 1290
    # 12 prompt tokens at 0.30/M plus 1290 image tokens at 30/M.
    assert result.estimated_cost == Decimal("0.038704")


def test_price_setting_changes_the_estimate(make_provider) -> None:
    provider = make_provider(
        {
            "nanobanana.price_per_million_output_tokens": "10",
            "nanobanana.price_per_million_input_tokens": "0",
        }
    )
    result = provider.generate(text_request(), api_key="k")
    assert result.estimated_cost == Decimal("0.012900")


def test_thought_parts_are_skipped(provider: NanoBananaProvider) -> None:
    result = provider.generate(text_request(), api_key="thoughts-1")
    # The thought image is 8x8 red; the answer is the 1024x1024 one after it.
    assert (result.image.width, result.image.height) == (1024, 1024)
    # Thinking is billed as output: 412 more tokens than a plain answer.
    assert result.usage["thoughtsTokenCount"] == 412
    assert result.estimated_cost == Decimal("0.051064")


def test_last_of_several_images_is_the_answer(provider: NanoBananaProvider) -> None:
    result = provider.generate(text_request("wide"), api_key="multiple_images-1")
    assert (result.image.width, result.image.height) == (1344, 768)


def test_mime_is_sniffed_not_trusted(provider: NanoBananaProvider) -> None:
    result = provider.generate(text_request(), api_key="wrong_mime-1")
    assert result.image.mime == "image/jpeg"
    assert result.image.extension == "jpg"
    assert (result.image.width, result.image.height) == (16, 8)


def test_text_part_alongside_image_is_fine(fake: FakeGemini, provider) -> None:
    fake.behave("k", "success", text="Here is your lighthouse.")
    assert provider.generate(text_request(), api_key="k").image.mime == "image/png"


def test_webp_answer(fake: FakeGemini, provider) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), (1, 2, 3)).save(buffer, "WEBP")
    fake.behave("k", "success", image=buffer.getvalue(), mime="image/png")
    image = provider.generate(text_request(), api_key="k").image
    assert (image.mime, image.width, image.height) == ("image/webp", 30, 20)


def test_a_paths_clients_are_reused_and_share_one_tls_context(
    fake: FakeGemini, provider: NanoBananaProvider
) -> None:
    from nproxy_core.plugins.http import CLIENTS_PER_PATH

    for _ in range(CLIENTS_PER_PATH + 3):
        provider.generate(text_request(), api_key="k")
    clients = provider._clients._clients
    assert sorted(clients) == [(None, n) for n in range(CLIENTS_PER_PATH)]
    assert all(c._trust_env is False for c in clients.values())
    # Each client made its first call, then the next turn reused a kept one.
    assert len(fake.requests) == CLIENTS_PER_PATH + 3
    contexts = {id(c._transport._pool._ssl_context) for c in clients.values()}
    assert len(contexts) == 1
