"""Resolution presets of the Nano Banana models: the names users pick, and what Gemini is sent.

Gemini has no pixel sizes, only an aspect ratio (and, on Pro models, an image size tier), so a
preset names a shape rather than a resolution. One table serves every model; Pro models add the
larger size tiers as ``<preset>_2k`` and ``<preset>_4k`` (the bare name is 1K there).

    preset            aspectRatio  typical use
    ----------------  -----------  ------------------------------------------
    square            1:1          avatars, social posts (the default)
    portrait          3:4          classic portrait
    landscape         4:3          classic landscape
    photo_portrait    2:3          35 mm photo, upright
    photo_landscape   3:2          35 mm photo, sideways
    social_portrait   4:5          Instagram-style portrait post
    social_landscape  5:4          large-format print, sideways
    tall              9:16         phone screen, stories
    wide              16:9         video frame, desktop wallpaper
    ultrawide         21:9         cinema, banners

On Pro models ``square`` is 1:1 at 1K, ``square_2k`` 1:1 at 2K, ``square_4k`` 1:1 at 4K, and
likewise for every shape.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ASPECT_RATIOS",
    "PRO_IMAGE_SIZES",
    "Preset",
    "is_pro_model",
    "presets_for",
]

#: Preset name → Gemini ``imageConfig.aspectRatio``. Order is the order users see; first is default.
ASPECT_RATIOS: dict[str, str] = {
    "square": "1:1",
    "portrait": "3:4",
    "landscape": "4:3",
    "photo_portrait": "2:3",
    "photo_landscape": "3:2",
    "social_portrait": "4:5",
    "social_landscape": "5:4",
    "tall": "9:16",
    "wide": "16:9",
    "ultrawide": "21:9",
}

#: Suffix → Gemini ``imageConfig.imageSize`` (uppercase K is what the API accepts). The bare
#: preset name means 1K so that a preset picked for Flash still means the same on Pro.
PRO_IMAGE_SIZES: dict[str, str] = {"": "1K", "_2k": "2K", "_4k": "4K"}


@dataclass(frozen=True)
class Preset:
    """What one preset name sends to Gemini."""

    name: str
    aspect_ratio: str
    #: ``None`` on Flash: the field is only accepted by Pro models.
    image_size: str | None = None


def is_pro_model(model: str) -> bool:
    """Pro image models (``gemini-3-pro-image-preview``, …) take image sizes and 14 inputs."""
    return "-pro-" in model or model.endswith("-pro")


def presets_for(model: str) -> dict[str, Preset]:
    """Every preset the model accepts, by name, in display order."""
    if not is_pro_model(model):
        return {name: Preset(name, ratio) for name, ratio in ASPECT_RATIOS.items()}
    presets: dict[str, Preset] = {}
    # Sizes outermost, so the list reads "all 1K shapes, then all 2K, then all 4K".
    for suffix, size in PRO_IMAGE_SIZES.items():
        for name, ratio in ASPECT_RATIOS.items():
            presets[name + suffix] = Preset(name + suffix, ratio, size)
    return presets
