"""The OpenAI image models: presets (a shape at a quality), the names people see, and prices.

OpenAI's GPT Image models take a pixel ``size`` and a ``quality``. A preset names a shape (the
three sizes the models make) and, by a suffix, a quality; the bare shape is the default quality
(``openai.quality``, ``medium`` unless set), so a preset picked once keeps meaning the same
picture whatever the other presets are:

    preset                          size        quality
    ------------------------------  ----------  -----------------------------------
    square, portrait, landscape     1024x1024,  ``openai.quality`` (default medium)
                                    1024x1536,
                                    1536x1024
    <shape>_low                     as above    low     (left out when low is the default)
    <shape>_medium                  as above    medium  (left out when medium is the default)
    <shape>_high                    as above    high    (left out when high is the default)

Prices are OpenAI's published prices per image (USD), the figures the plugin can know before an
image is made:

    model              size                   low     medium  high
    -----------------  ---------------------  ------  ------  ------
    gpt-image-1        1024x1024              0.011   0.042   0.167
                       1024x1536, 1536x1024   0.016   0.063   0.25
    gpt-image-1-mini   1024x1024              0.005   0.011   0.036
                       1024x1536, 1536x1024   0.006   0.015   0.052

and per million tokens, for the estimate of a finished image from the ``usage`` OpenAI reports:
gpt-image-1 text input 5, image input 10, image output 40; gpt-image-1-mini 2, 2.50 and 8. A
``gpt-image-*`` id this table does not know is priced like ``gpt-image-1`` (the dearer, the safe
side for a spend limit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "DEFAULT_MODELS",
    "MODEL_ID",
    "QUALITIES",
    "SHAPES",
    "Preset",
    "TokenPrices",
    "label_for",
    "presets_for",
    "token_prices_for",
]

#: What ``openai.models`` offers when it is not set; the first is the default model.
DEFAULT_MODELS: tuple[str, ...] = ("gpt-image-1",)

#: A model id as it appears in ``{api_base}/models/{model}``: one path segment.
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

#: The qualities a preset can name, cheapest first (``auto`` has no price, so it is not offered).
QUALITIES: tuple[str, ...] = ("low", "medium", "high")

#: Shape → (width, height), in the order people see them. The first is the default preset.
SHAPES: dict[str, tuple[int, int]] = {
    "square": (1024, 1024),
    "portrait": (1024, 1536),
    "landscape": (1536, 1024),
}

LABELS: dict[str, str] = {
    "gpt-image-1": "GPT Image 1",
    "gpt-image-1-mini": "GPT Image 1 Mini",
}

_D = Decimal
# By quality: (1024x1024, a 1536-px side).
_PER_IMAGE: dict[str, dict[str, tuple[Decimal, Decimal]]] = {
    "gpt-image-1": {
        "low": (_D("0.011"), _D("0.016")),
        "medium": (_D("0.042"), _D("0.063")),
        "high": (_D("0.167"), _D("0.25")),
    },
    "gpt-image-1-mini": {
        "low": (_D("0.005"), _D("0.006")),
        "medium": (_D("0.011"), _D("0.015")),
        "high": (_D("0.036"), _D("0.052")),
    },
}


@dataclass(frozen=True)
class TokenPrices:
    """USD per million tokens."""

    text_input: Decimal
    image_input: Decimal
    output: Decimal


_TOKEN_PRICES: dict[str, TokenPrices] = {
    "gpt-image-1": TokenPrices(_D("5"), _D("10"), _D("40")),
    "gpt-image-1-mini": TokenPrices(_D("2"), _D("2.50"), _D("8")),
}


@dataclass(frozen=True)
class Preset:
    """What one preset name sends to OpenAI, and what it is estimated to cost."""

    name: str
    width: int
    height: int
    quality: str
    usd: Decimal

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def aspect_ratio(self) -> str:
        return f"{self.width}:{self.height}"


def _family(model: str) -> str:
    return model if model in _PER_IMAGE else "gpt-image-1"


def label_for(model: str) -> str:
    """The name people see: ``GPT Image 1``, or the id made readable."""
    known = LABELS.get(model)
    if known is not None:
        return known
    words = [w for w in re.split(r"[-_]+", model) if w]
    named = " ".join("GPT" if w.lower() == "gpt" else w[:1].upper() + w[1:] for w in words)
    return named or model


def presets_for(model: str, default_quality: str) -> dict[str, Preset]:
    """Every preset of ``model`` by name, in display order: the bare shapes (at
    ``default_quality``) first, then each other quality's shapes, cheapest first."""
    prices = _PER_IMAGE[_family(model)]
    presets: dict[str, Preset] = {}
    for quality in (default_quality, *(q for q in QUALITIES if q != default_quality)):
        suffix = "" if quality == default_quality else f"_{quality}"
        for shape, (width, height) in SHAPES.items():
            usd = prices[quality][0 if width == height else 1]
            presets[shape + suffix] = Preset(shape + suffix, width, height, quality, usd)
    return presets


def token_prices_for(model: str) -> TokenPrices:
    return _TOKEN_PRICES[_family(model)]
