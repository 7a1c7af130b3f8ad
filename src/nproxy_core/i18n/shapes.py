"""The names of the image shapes the providers offer (their preset names, without a size tier),
as people read them: one home for the word, translated where it is shown."""

from __future__ import annotations

from nproxy_core.i18n import _

SHAPES = {
    "square": _("Square"),
    "portrait": _("Portrait"),
    "landscape": _("Landscape"),
    "photo_portrait": _("Photo portrait"),
    "photo_landscape": _("Photo landscape"),
    "social_portrait": _("Social portrait"),
    "social_landscape": _("Social landscape"),
    "tall": _("Tall"),
    "wide": _("Wide"),
    "ultrawide": _("Ultrawide"),
}


def shape_label(shape: str) -> str:
    """``portrait`` → ``Portrait`` (a string the localizer translates); an unknown shape in
    words: ``extra_tall`` → ``Extra tall``."""
    return SHAPES.get(shape) or shape.replace("_", " ").capitalize()
