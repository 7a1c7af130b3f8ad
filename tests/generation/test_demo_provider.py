"""The demo provider's two models (DESIGN 4.12: units visible in development)."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from PIL import Image

from nproxy_core.demo.provider import RESOLUTIONS, DemoProvider
from nproxy_core.plugins import ImageRequest, InvalidInputError, Mode
from nproxy_core.pricing.services import units_for_usd


def units(usd: Decimal) -> int:
    return units_for_usd(usd, Decimal("0.039"))


def test_the_first_model_is_unchanged_and_costs_one_unit() -> None:
    first, pro = DemoProvider({"demo.delay_seconds": "0"}).capabilities()
    assert first.model == "demo-image-1" and first.label == "Demo"
    assert first.resolutions == ("square", "portrait", "landscape", "tall", "wide")
    assert dict(first.sizes) == RESOLUTIONS
    assert first.aspect_ratios["portrait"] == "384:512"
    assert {units(u) for u in first.usd_per_image.values()} == {1}
    assert set(first.usd_per_image) == set(first.resolutions)

    assert pro.model == "demo-pro" and pro.label == "Demo Pro"
    assert pro.resolutions[:5] == first.resolutions
    assert pro.resolutions[5:] == tuple(f"{n}_2k" for n in first.resolutions)
    assert pro.sizes["square"] == (1024, 1024) and pro.sizes["wide_2k"] == (2048, 1152)
    assert pro.aspect_ratios["wide_2k"] == first.aspect_ratios["wide"]
    assert set(pro.usd_per_image) == set(pro.resolutions)
    assert units(pro.usd_per_image["tall"]) == 3
    assert units(pro.usd_per_image["tall_2k"]) == 6


def test_generate_picks_the_model_and_stays_deterministic() -> None:
    provider = DemoProvider({"demo.delay_seconds": "0"})

    def make(model, resolution):
        request = ImageRequest(Mode.TEXT_TO_IMAGE, "a fox", resolution, model=model)
        return provider.generate(request, api_key="k").image

    default = make(None, "square")
    assert (default.width, default.height) == (512, 512)
    assert make("demo-image-1", "square").data == default.data
    big = make("demo-pro", "landscape_2k")
    assert (big.width, big.height) == (2048, 1536)
    assert Image.open(io.BytesIO(big.data)).size == (2048, 1536)
    assert make("demo-pro", "landscape_2k").data == big.data
    with pytest.raises(InvalidInputError, match="not offered"):
        make("nope", "square")
    with pytest.raises(InvalidInputError, match="unknown resolution"):
        make(None, "square_2k")
