"""The Nano Banana models: which ids are offered, the names people see, and Google's prices.

Prices are Google's published Gemini API prices (paid tier, standard requests, USD), the only
figures the plugin can know before an image is made:

    model                        per image                   per million tokens (in / out)
    ---------------------------  --------------------------  ------------------------------
    gemini-2.5-flash-image       0.039 (1,290 image tokens)   0.30 / 30
    gemini-3-pro-image-preview   1K and 2K 0.134 (1,120),     2.00 / 120
                                 4K 0.24 (2,000 tokens)

A model id this table does not know is priced like its family: a Pro model (see
:func:`.presets.is_pro_model`) like ``gemini-3-pro-image-preview``, any other like Flash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from .presets import Preset, is_pro_model

__all__ = [
    "ALIASES",
    "DEFAULT_MODELS",
    "MODEL_ID",
    "label_for",
    "status_for",
    "token_prices_for",
    "usd_per_image_for",
]

#: What ``nanobanana.models`` offers when neither it nor ``nanobanana.model`` is set; the first
#: is the default model.
DEFAULT_MODELS: tuple[str, ...] = ("gemini-2.5-flash-image", "gemini-3-pro-image-preview")

#: A model id as it appears in ``{api_base}/models/{model}``: one path segment.
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

#: The names people see, for the ids Google markets under a name of its own.
LABELS: dict[str, str] = {
    "gemini-2.5-flash-image": "Nano Banana",
    "gemini-2.5-flash-image-preview": "Nano Banana (preview)",
    "gemini-3-pro-image-preview": "Nano Banana Pro",
}

# Google's published prices (see the module docstring). Per image by Gemini ``imageSize``
# (None: the model takes no size, as on Flash); per million tokens as (input, output), for the
# spend estimate of a finished attempt, which reads the tokens Gemini reports.
_FLASH_PER_IMAGE: dict[str | None, Decimal] = {None: Decimal("0.039")}
_PRO_PER_IMAGE: dict[str | None, Decimal] = {
    "1K": Decimal("0.134"),
    "2K": Decimal("0.134"),
    "4K": Decimal("0.24"),
}
_FLASH_TOKEN_PRICES = (Decimal("0.30"), Decimal("30"))
_PRO_TOKEN_PRICES = (Decimal("2.00"), Decimal("120"))

# Words kept as written when a label is made from an unknown id.
_UPPER_WORDS = {"tts": "TTS", "exp": "Exp"}


#: Ids Google retired in favour of a model: they keep working, made by their successor.
ALIASES: dict[str, tuple[str, ...]] = {
    "gemini-2.5-flash-image": ("gemini-2.5-flash-image-preview",),
}


def status_for(model: str) -> str:
    """``preview`` for Google's preview ids, ``ga`` otherwise."""
    return "preview" if "preview" in model else "ga"


def label_for(model: str) -> str:
    """The name people see: Google's product name where it has one, else the id made readable
    (``gemini-3.5-flash-image`` → ``Gemini 3.5 Flash Image``)."""
    known = LABELS.get(model)
    if known is not None:
        return known
    words = [w for w in re.split(r"[-_]+", model) if w]
    return " ".join(_UPPER_WORDS.get(w.lower(), w[:1].upper() + w[1:]) for w in words) or model


def usd_per_image_for(model: str, presets: Mapping[str, Preset]) -> dict[str, Decimal]:
    """The estimated USD cost of one image at each of ``presets`` (DESIGN 4.12)."""
    table = _PRO_PER_IMAGE if is_pro_model(model) else _FLASH_PER_IMAGE
    fallback = max(table.values())  # a size the table lacks: the safe side, the dearest
    return {name: table.get(p.image_size, fallback) for name, p in presets.items()}


def token_prices_for(model: str) -> tuple[Decimal, Decimal]:
    """Google's (input, output) USD per million tokens for the model's family."""
    return _PRO_TOKEN_PRICES if is_pro_model(model) else _FLASH_TOKEN_PRICES
