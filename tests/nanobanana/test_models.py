"""Several Nano Banana models side by side (DESIGN 4.13): ``nanobanana.models``, each model's
presets, limits, label and USD cost per preset (DESIGN 4.12), and the request going to the
model it names."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_UP, Decimal

import pytest

from fakes.gemini import FakeGemini, make_png, success
from nproxy_core.plugins import (
    ImageRequest,
    InputImage,
    InvalidInputError,
    Mode,
    PluginSettingError,
)
from nproxy_provider_nanobanana import NanoBananaProvider
from nproxy_provider_nanobanana.models import label_for
from nproxy_provider_nanobanana.presets import ASPECT_RATIOS

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image-preview"


def text_request(resolution: str = "square", model: str | None = None) -> ImageRequest:
    return ImageRequest(
        mode=Mode.TEXT_TO_IMAGE, prompt="a lighthouse at dusk", resolution=resolution, model=model
    )


def units(usd: Decimal, usd_per_unit: Decimal = Decimal("0.039")) -> int:
    """DESIGN 4.12's default: max(1, round_half_up(usd / usd_per_unit))."""
    return max(1, int((usd / usd_per_unit).quantize(Decimal(1), rounding=ROUND_HALF_UP)))


# --- capabilities --------------------------------------------------------------------------------


def test_both_models_are_offered_by_default_flash_first() -> None:
    provider = NanoBananaProvider({})
    flash, pro = provider.capabilities()
    assert provider.models == (FLASH, PRO)
    assert provider.model == FLASH  # the default model

    assert (flash.model, flash.label, flash.display_name) == (FLASH, "Nano Banana", "Nano Banana")
    assert flash.resolutions == tuple(ASPECT_RATIOS)
    assert flash.max_input_images == 3
    assert flash.aspect_ratios["wide"] == "16:9"

    assert (pro.model, pro.label) == (PRO, "Nano Banana Pro")
    assert pro.max_input_images == 14
    assert pro.resolutions[: len(ASPECT_RATIOS)] == tuple(ASPECT_RATIOS)
    assert pro.resolutions[-1] == "ultrawide_4k"
    assert len(pro.resolutions) == 3 * len(ASPECT_RATIOS)
    assert pro.aspect_ratios["wide_4k"] == "16:9"
    assert pro.as_dict("nanobanana")["label"] == "Nano Banana Pro"


def test_every_preset_has_its_usd_cost_and_the_units_come_out_as_designed() -> None:
    flash, pro = NanoBananaProvider({}).capabilities()
    assert set(flash.usd_per_image) == set(flash.resolutions)
    assert set(pro.usd_per_image) == set(pro.resolutions)
    assert set(flash.usd_per_image.values()) == {Decimal("0.039")}
    for name in ASPECT_RATIOS:
        assert pro.usd_per_image[name] == Decimal("0.134")
        assert pro.usd_per_image[f"{name}_2k"] == Decimal("0.134")
        assert pro.usd_per_image[f"{name}_4k"] == Decimal("0.24")
    # DESIGN 4.12: Flash 1 unit, Pro 1K/2K 3, Pro 4K 6 at the default 0.039 USD per unit.
    assert {units(usd) for usd in flash.usd_per_image.values()} == {1}
    assert units(pro.usd_per_image["square"]) == 3
    assert units(pro.usd_per_image["tall_2k"]) == 3
    assert units(pro.usd_per_image["wide_4k"]) == 6


def test_the_configured_order_is_kept_and_unknown_ids_get_a_readable_label() -> None:
    provider = NanoBananaProvider(
        {"nanobanana.models": f"  {PRO}\n gemini-3.5-flash-image  gemini-4-pro-image "}
    )
    pro, other, other_pro = provider.capabilities()
    assert provider.models == (PRO, "gemini-3.5-flash-image", "gemini-4-pro-image")
    assert provider.model == PRO
    assert other.label == "Gemini 3.5 Flash Image"
    assert other.max_input_images == 3 and other.resolutions == tuple(ASPECT_RATIOS)
    assert set(other.usd_per_image.values()) == {Decimal("0.039")}
    # An unknown Pro id is priced and shaped like its family.
    assert other_pro.label == "Gemini 4 Pro Image"
    assert other_pro.max_input_images == 14
    assert other_pro.usd_per_image["square_4k"] == Decimal("0.24")
    assert pro.label == "Nano Banana Pro"


def test_labels() -> None:
    assert label_for(FLASH) == "Nano Banana"
    assert label_for(PRO) == "Nano Banana Pro"
    assert label_for("gemini-2.5-flash-image-preview") == "Nano Banana (preview)"
    assert label_for("imagen_4.0-ultra") == "Imagen 4.0 Ultra"


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"nanobanana.models": ""}, r"'nanobanana\.models' is empty"),
        ({"nanobanana.models": "  \n "}, r"'nanobanana\.models' is empty"),
        ({"nanobanana.models": f"{FLASH} {PRO} {FLASH}"}, rf"names '{FLASH}' more than once"),
        ({"nanobanana.models": f"{FLASH} models/{FLASH}"}, r"'nanobanana\.models' names"),
        ({"nanobanana.models": f"{FLASH},{PRO}"}, r"'nanobanana\.models'.*not a model id"),
        ({"nanobanana.models": "gemini/../x"}, r"'nanobanana\.models'.*not a model id"),
        ({"nanobanana.models": "-flash"}, r"'nanobanana\.models'.*not a model id"),
        ({"nanobanana.model": "gemini image"}, r"'nanobanana\.model'"),
        (
            {"nanobanana.models": FLASH, "nanobanana.model": PRO},
            r"'nanobanana\.model' \('gemini-3-pro-image-preview'\) is not one of "
            r"'nanobanana\.models'",
        ),
    ],
)
def test_a_bad_model_list_is_refused_naming_the_setting(settings: dict, message: str) -> None:
    with pytest.raises(PluginSettingError, match=message):
        NanoBananaProvider(settings)


@pytest.mark.parametrize("model", [FLASH, PRO, f"models/{PRO}"])
def test_the_single_model_setting_still_offers_just_that_model(model: str) -> None:
    provider = NanoBananaProvider({"nanobanana.model": model})
    (caps,) = provider.capabilities()
    assert caps.model == model.removeprefix("models/")
    assert provider.models == (caps.model,)
    assert caps.label == label_for(caps.model)


def test_a_blank_single_model_setting_means_the_default_list() -> None:
    assert NanoBananaProvider({"nanobanana.model": " "}).models == (FLASH, PRO)


def test_both_settings_the_list_decides_the_order() -> None:
    provider = NanoBananaProvider({"nanobanana.models": f"{FLASH} {PRO}", "nanobanana.model": PRO})
    assert provider.models == (FLASH, PRO)
    assert provider.model == FLASH


# --- generating with each model --------------------------------------------------------------


def test_no_model_named_goes_to_the_first(fake: FakeGemini, make_provider) -> None:
    provider = make_provider()
    for model in (None, ""):
        result = provider.generate(text_request("wide", model), api_key="k")
        assert (result.image.width, result.image.height) == (1344, 768)
    assert [r.path for r in fake.requests] == [f"/v1beta/models/{FLASH}:generateContent"] * 2
    assert all("imageSize" not in r.image_config for r in fake.requests)


def test_flash_and_pro_4k_each_go_to_their_own_model(fake: FakeGemini, make_provider) -> None:
    provider = make_provider()
    flash = provider.generate(text_request("square", FLASH), api_key="k")
    pro = provider.generate(text_request("square_4k", PRO), api_key="k")

    first, second = fake.requests
    assert first.path == f"/v1beta/models/{FLASH}:generateContent"
    assert first.image_config == {"aspectRatio": "1:1"}
    assert second.path == f"/v1beta/models/{PRO}:generateContent"
    assert second.image_config == {"aspectRatio": "1:1", "imageSize": "4K"}

    assert (flash.image.width, flash.image.height) == (1024, 1024)
    assert (pro.image.width, pro.image.height) == (4096, 4096)
    # Each at its own model's token prices: 12 prompt tokens plus the image tokens.
    assert flash.estimated_cost == Decimal("0.038704")  # 1290 at 30/M, 12 at 0.30/M
    assert pro.estimated_cost == Decimal("0.240024")  # 2000 at 120/M, 12 at 2.00/M


def test_pro_1k_preset_sends_1k(fake: FakeGemini, make_provider) -> None:
    result = make_provider().generate(text_request("tall", PRO), api_key="k")
    assert fake.requests[0].image_config == {"aspectRatio": "9:16", "imageSize": "1K"}
    assert result.estimated_cost == Decimal("0.134424")


def test_each_model_has_its_own_reference_image_limit(fake: FakeGemini, make_provider) -> None:
    provider = make_provider()
    inputs = (InputImage(make_png(4, 4), "image/png"),) * 4

    def edit(model: str) -> ImageRequest:
        return ImageRequest(
            mode=Mode.IMAGE_TO_IMAGE, prompt="x", resolution="square", inputs=inputs, model=model
        )

    with pytest.raises(InvalidInputError, match=f"{FLASH} takes at most 3"):
        provider.generate(edit(FLASH), api_key="k")
    assert fake.requests == []
    provider.generate(edit(PRO), api_key="k")
    assert len(fake.requests[0].parts) == 5


@pytest.mark.parametrize(
    "request_",
    [
        text_request("square", "gemini-1.0-pro"),
        text_request("square", f"models/{PRO}"),
        text_request("square_4k", FLASH),  # a Pro preset on Flash
        text_request("square_4k"),  # ... and on the default model, which is Flash
    ],
)
def test_an_unknown_model_or_a_preset_of_another_model_is_refused(
    fake: FakeGemini, make_provider, request_: ImageRequest
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        make_provider().generate(request_, api_key="k")
    if "4k" not in request_.resolution:
        assert caught.value.message == (
            f"model {request_.model!r} is not offered (only {FLASH}, {PRO})"
        )
    assert fake.requests == []


def test_a_model_left_out_of_the_list_is_refused(fake: FakeGemini, make_provider) -> None:
    provider = make_provider({"nanobanana.models": PRO})
    with pytest.raises(InvalidInputError, match=f"only {PRO}"):
        provider.generate(text_request("square", FLASH), api_key="k")
    provider.generate(text_request("square_2k"), api_key="k")
    assert fake.requests[0].path == f"/v1beta/models/{PRO}:generateContent"


def test_many_threads_each_get_their_own_model(fake: FakeGemini, make_provider) -> None:
    """generate() runs on many threads at once: no call sees another's model."""
    provider = make_provider()
    jobs = [(FLASH, "square"), (PRO, "square_2k"), (None, "wide")] * 8

    def run(job: tuple[str | None, str]) -> tuple[int | None, int | None]:
        image = provider.generate(text_request(job[1], job[0]), api_key="k").image
        return image.width, image.height

    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(run, jobs))
    assert sizes == [(1024, 1024), (2048, 2048), (1344, 768)] * 8
    paths = sorted(r.path for r in fake.requests)
    assert paths.count(f"/v1beta/models/{PRO}:generateContent") == 8
    assert paths.count(f"/v1beta/models/{FLASH}:generateContent") == 16


# --- spend estimates ---------------------------------------------------------------------------


def test_token_price_settings_override_every_model(fake: FakeGemini, make_provider) -> None:
    provider = make_provider(
        {
            "nanobanana.price_per_million_output_tokens": "10",
            "nanobanana.price_per_million_input_tokens": "0",
        }
    )
    flash = provider.generate(text_request("square", FLASH), api_key="k")
    pro = provider.generate(text_request("square", PRO), api_key="k")
    assert flash.estimated_cost == Decimal("0.012900")  # 1290 at 10/M
    assert pro.estimated_cost == Decimal("0.011200")  # 1120 at 10/M


def test_estimate_cost_is_per_model() -> None:
    provider = NanoBananaProvider({})
    usage = {"promptTokenCount": 1000, "candidatesTokenCount": 1000}
    assert provider.estimate_cost(usage) == Decimal("0.030300")
    assert provider.estimate_cost(usage, model=FLASH) == Decimal("0.030300")
    assert provider.estimate_cost(usage, model=PRO) == Decimal("0.122000")
    assert provider.estimate_cost({}, model=PRO) is None
    with pytest.raises(ValueError, match="not offered"):
        provider.estimate_cost(usage, model="gemini-1.0-pro")
    assert (provider.input_price, provider.output_price) == (Decimal("0.30"), Decimal("30"))
    pro_first = NanoBananaProvider({"nanobanana.models": f"{PRO} {FLASH}"})
    assert (pro_first.input_price, pro_first.output_price) == (Decimal("2.00"), Decimal("120"))


def _without_usage(request):
    reply = success(request)
    del reply.body["usageMetadata"]
    return reply


@pytest.mark.parametrize(
    ("model", "resolution", "cost"),
    [
        (FLASH, "square", Decimal("0.039")),
        (PRO, "square", Decimal("0.134")),
        (PRO, "wide_2k", Decimal("0.134")),
        (PRO, "tall_4k", Decimal("0.24")),
    ],
)
def test_an_answer_without_usage_costs_its_models_published_price(
    fake: FakeGemini, make_provider, model: str, resolution: str, cost: Decimal
) -> None:
    fake.behave("k", _without_usage)
    result = make_provider().generate(text_request(resolution, model), api_key="k")
    assert result.estimated_cost == cost
    assert result.usage == {}


def test_the_price_per_image_setting_prices_every_model_without_usage(
    fake: FakeGemini, make_provider
) -> None:
    fake.behave("k", _without_usage)
    provider = make_provider({"nanobanana.price_per_image": "0.05"})
    assert provider.price_per_image == Decimal("0.05")
    for model, resolution in ((FLASH, "square"), (PRO, "square_4k")):
        result = provider.generate(text_request(resolution, model), api_key="k")
        assert result.estimated_cost == Decimal("0.05")


def test_the_price_per_image_defaults_to_the_first_models_price() -> None:
    assert NanoBananaProvider({}).price_per_image == Decimal("0.039")
    assert NanoBananaProvider({"nanobanana.models": PRO}).price_per_image == Decimal("0.134")


# --- key and route checks ------------------------------------------------------------------------


def test_key_and_route_checks_ask_about_the_first_model(fake: FakeGemini, make_provider) -> None:
    provider = make_provider({"nanobanana.models": f"{PRO} {FLASH}"})
    check = provider.check_key(api_key="success-1")
    assert f"({PRO}) is available to this key" in check.detail
    provider.check_route(proxy_url=None)
    assert [r.path for r in fake.requests] == [f"/v1beta/models/{PRO}"] * 2
