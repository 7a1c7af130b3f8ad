"""Languages (DESIGN 4.15): English, Russian and Uzbek (Latin) for every customer surface.

Strings for people are marked with :data:`_` (Python), ``{% trans %}`` / ``_()`` (Jinja2) or
``gettext()`` (the chat's JavaScript), extracted by Babel into ``nproxy_core/locale`` and compiled
by the package build. Which language a request speaks is decided once, by :mod:`.negotiation`.
"""

from __future__ import annotations

from typing import Any

from translationstring import TranslationString, TranslationStringFactory

#: The catalog's domain: ``locale/<lang>/LC_MESSAGES/messages.mo``.
DOMAIN = "messages"

#: Marks a string for translation; the result is a ``str`` that a localizer translates later
#: (``${name}`` placeholders, filled from ``mapping``).
_ = TranslationStringFactory(DOMAIN)

#: The languages offered, each by its own name (what a reader of that language looks for).
LANGUAGES: dict[str, str] = {
    "en": "English",
    "ru": "Русский",
    "uz": "O\N{MODIFIER LETTER TURNED COMMA}zbekcha",
}
DEFAULT = "en"

#: The cookie that keeps a visitor's choice of language.
COOKIE = "lang"


class Localizable(str):
    """English text (its values filled in) that remembers the marked message it came from, so
    code that treats it as a string reads English and a localizer can still translate it."""

    translatable: TranslationString


def localizable(message: str) -> str:
    """``message`` as English text that :func:`localize` can translate later."""
    if not isinstance(message, TranslationString):
        return message
    text = Localizable(message.interpolate())
    text.translatable = message
    return text


def localize(localizer: Any, message: str) -> str:
    """``message`` (marked, :func:`localizable` or a plain English string that the catalog
    holds) in ``localizer``'s language."""
    return localizer.translate(getattr(message, "translatable", message))


def includeme(config: Any) -> None:
    from nproxy_core.i18n.negotiation import negotiate_locale

    config.add_translation_dirs("nproxy_core:locale")
    config.set_locale_negotiator(negotiate_locale)
    config.add_route("language", "/language")
    config.scan("nproxy_core.i18n.views")
