"""The demo provider: real PNG images made locally with Pillow, deterministic from the prompt.

``demo.delay_seconds`` (default 1.0) makes it as slow as a real model, and ``demo.failure_rate``
(0..1, default 0) makes that share of attempts fail as a retryable provider error, so the key
pool can be seen at work without any external service. ``demo.text_only_rate`` (0..1, default 0)
makes that share of attempts answer in words only, as a real model sometimes does (the image
fails, nothing is charged). Asked for words beside the picture (``ImageRequest.with_text``), it
answers a short stand-in description built from the prompt. Image-to-image blends the first input
image under the generated pattern; ``strength`` (default 0.6) is how much of the pattern
replaces the input.

A key check (an admin's key test) answers at once: keys starting with ``reject`` are refused as
a revoked key would be, every other key is accepted.

Two models, so that units (DESIGN 4.12) can be seen at work in development:

``demo-image-1`` (``Demo``, the default)
    five small presets, each declared at 0.039 USD an image: 1 unit at the default
    ``nproxy.units.usd_per_unit``.
``demo-pro`` (``Demo Pro``)
    the same five shapes at twice the size (3 units: 0.117 USD) and ``_2k`` variants at four
    times the size, 2048 pixels on the long side (6 units: 0.234 USD).

The declared prices only make units; the provider's spend (``price_per_image``) stays zero,
since no money is spent.
"""

from __future__ import annotations

import hashlib
import io
import random
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from PIL import Image, ImageDraw, ImageOps

from nproxy_core.plugins import (
    AttemptResult,
    GeneratedImage,
    ImageRequest,
    InvalidInputError,
    KeyCheck,
    KeyRejectedError,
    Mode,
    ModelCapabilities,
    NoImageAnswer,
    Provider,
    RetryableError,
    setting,
)

#: Presets and their pixel sizes; small, since these are stand-ins.
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "square": (512, 512),
    "portrait": (384, 512),
    "landscape": (512, 384),
    "tall": (288, 512),
    "wide": (512, 288),
}
#: Each preset's aspect ratio, as the first model has always declared it.
_RATIOS: dict[str, str] = {name: f"{w}:{h}" for name, (w, h) in RESOLUTIONS.items()}

MODEL = "demo-image-1"
PRO_MODEL = "demo-pro"

#: Demo Pro's presets: every shape at twice the size, then every shape at four times (``_2k``).
PRO_RESOLUTIONS: dict[str, tuple[int, int]] = {
    **{name: (w * 2, h * 2) for name, (w, h) in RESOLUTIONS.items()},
    **{f"{name}_2k": (w * 4, h * 4) for name, (w, h) in RESOLUTIONS.items()},
}

#: Declared USD per image: multiples of the default 0.039 USD per unit, so the units read
#: 1 (Demo), 3 (Demo Pro) and 6 (Demo Pro ``_2k``).
USD_PER_IMAGE = Decimal("0.039")
PRO_USD_PER_IMAGE = Decimal("0.117")
PRO_LARGE_USD_PER_IMAGE = Decimal("0.234")

#: Model id → (label, presets with pixel sizes, USD per image by preset).
MODELS: dict[str, tuple[str, Mapping[str, tuple[int, int]], Mapping[str, Decimal]]] = {
    MODEL: ("Demo", RESOLUTIONS, dict.fromkeys(RESOLUTIONS, USD_PER_IMAGE)),
    PRO_MODEL: (
        "Demo Pro",
        PRO_RESOLUTIONS,
        {
            name: PRO_LARGE_USD_PER_IMAGE if name.endswith("_2k") else PRO_USD_PER_IMAGE
            for name in PRO_RESOLUTIONS
        },
    ),
}


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(value)
    return rate


def _seconds(value: str) -> float:
    seconds = float(value)
    if seconds < 0:
        raise ValueError(value)
    return seconds


class DemoProvider(Provider):
    is_demo = True
    supports_key_check = True

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.delay = setting(settings, "demo.delay_seconds", default=1.0, cast=_seconds)
        self.failure_rate = setting(settings, "demo.failure_rate", default=0.0, cast=_rate)
        self.text_only_rate = setting(settings, "demo.text_only_rate", default=0.0, cast=_rate)
        self._random = random.Random()

    def capabilities(self) -> Sequence[ModelCapabilities]:
        return [
            ModelCapabilities(
                model=model,
                modes=(Mode.TEXT_TO_IMAGE, Mode.IMAGE_TO_IMAGE),
                resolutions=tuple(sizes),
                max_batch=4,
                supports_strength=True,
                max_input_images=3,
                aspect_ratios={name: _RATIOS[name.removesuffix("_2k")] for name in sizes},
                sizes=dict(sizes),
                label=label,
                usd_per_image=dict(usd),
            )
            for model, (label, sizes, usd) in MODELS.items()
        ]

    @property
    def attempt_deadline(self) -> float:
        return self.delay + 30.0

    @property
    def price_per_image(self) -> Decimal:
        return Decimal(0)

    def check_key(self, *, api_key: str, proxy_url: str | None = None) -> KeyCheck:
        _refuse_rejected(api_key)
        return KeyCheck(f"{MODEL} is available to this key", http_status=200)

    def generate(
        self, request: ImageRequest, *, api_key: str, proxy_url: str | None = None
    ) -> AttemptResult:
        _refuse_rejected(api_key)
        if self.delay:
            time.sleep(self.delay)
        if self.failure_rate and self._random.random() < self.failure_rate:
            raise RetryableError("demo provider failed on purpose", http_status=503)
        if self.text_only_rate and self._random.random() < self.text_only_rate:
            said = "I would rather describe this scene than draw it."
            raise NoImageAnswer(f"demo provider answered in words only: {said}", said=said)
        model = request.model or MODEL
        if model not in MODELS:
            raise InvalidInputError(f"model {model!r} is not offered (only {', '.join(MODELS)})")
        size = MODELS[model][1].get(request.resolution)
        if size is None:
            raise InvalidInputError(f"unknown resolution {request.resolution!r} for {model}")
        data = render(request, size)
        return AttemptResult(
            image=GeneratedImage(
                data=data,
                mime="image/png",
                width=size[0],
                height=size[1],
                text=describe(request) if request.with_text else None,
            ),
            usage={"images": 1},
        )


def _refuse_rejected(api_key: str) -> None:
    # Keys starting with "reject" behave as a revoked key: handy for trying the pool.
    if api_key.startswith("reject"):
        raise KeyRejectedError("demo key rejected", http_status=403)


_NAMES = ("Ember", "Juniper", "Pip", "Saffron", "Quill", "Marlow", "Tansy", "Bramble")
_TRAITS = ("curious", "gentle", "mischievous", "brave", "dreamy", "cheerful")
_QUIRKS = (
    "hums while thinking",
    "collects odd buttons",
    "never forgets a face",
    "naps in sunbeams",
)


def describe(request: ImageRequest) -> str:
    """The demo's stand-in for a model's words: a short character sketch, the same for the
    same prompt."""
    digest = hashlib.sha256(request.prompt.encode()).digest()
    name = _NAMES[digest[0] % len(_NAMES)]
    trait = _TRAITS[digest[1] % len(_TRAITS)]
    quirk = _QUIRKS[digest[2] % len(_QUIRKS)]
    return f"Meet {name}: {trait} and quick to laugh, {name} {quirk}. (Demo provider text.)"


def render(request: ImageRequest, size: tuple[int, int]) -> bytes:
    """A pattern drawn from the prompt's hash: the same prompt gives the same picture."""
    digest = hashlib.sha256(f"{request.prompt}\0{request.index}".encode()).digest()
    rng = random.Random(digest)
    width, height = size
    top = tuple(digest[0:3])
    bottom = tuple(digest[3:6])
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / max(1, height - 1)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(20, max(21, width // 3))
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], outline=color, width=4)
    if request.mode == Mode.IMAGE_TO_IMAGE and request.inputs:
        source = Image.open(io.BytesIO(request.inputs[0].data))
        source = ImageOps.fit(ImageOps.exif_transpose(source).convert("RGB"), size)
        strength = 0.6 if request.strength is None else request.strength
        image = Image.blend(source, image, strength)
    draw = ImageDraw.Draw(image)
    draw.text((10, height - 20), request.prompt[:60], fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
