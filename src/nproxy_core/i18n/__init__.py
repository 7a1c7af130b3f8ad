"""Languages (DESIGN 4.15): English, Russian and Uzbek (Latin) for every customer surface.

Strings for people are marked with :data:`_` (Python), ``{% trans %}`` / ``_()`` (Jinja2) or
``gettext()`` (the chat's JavaScript), extracted by Babel into ``nproxy_core/locale`` and compiled
by the package build. Which language a request speaks is decided once, by :mod:`.negotiation`.
"""

from __future__ import annotations

from typing import Any

from translationstring import TranslationStringFactory

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


def includeme(config: Any) -> None:
    from nproxy_core.i18n.negotiation import negotiate_locale

    config.add_translation_dirs("nproxy_core:locale")
    config.set_locale_negotiator(negotiate_locale)
    config.add_route("language", "/language")
    config.scan("nproxy_core.i18n.views")
