"""Words an admin writes for customers (a plan's or a pack's name, a template's title,
description and fields) in Russian and Uzbek beside the English.

A row keeps them in its ``translations`` column, ``{"ru": {"name": "..."}, "uz": {...}}``; the
English stays in the row's own columns, so everything that reads a name as English (the admin,
the audit log, the CLI) is unchanged. A reader meets the translation of their language, else the
English, as the catalog translates it (the names the product ships with are in the catalog).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nproxy_core.i18n import DEFAULT, LANGUAGES, localize

#: The languages an admin may translate into; English is the row's own columns.
TRANSLATED: tuple[str, ...] = tuple(code for code in LANGUAGES if code != DEFAULT)
#: How the admin (which stays English) names them.
ENGLISH_NAMES = {"ru": "Russian", "uz": "Uzbek"}


class BadTranslation(ValueError):
    """A translation an admin typed that cannot be kept; ``field`` is the form's name for it
    (``name_ru``), ``reason`` a short code (``too_long``, ``invalid``)."""

    def __init__(self, field: str, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.reason = reason


def form_name(field: str, language: str) -> str:
    """``name_ru``: what a form and a refusal call the ``language`` text of ``field``."""
    return f"{field}_{language}"


def translation(row: Any, field: str, language: str) -> str | None:
    """The admin's ``language`` text for ``field`` of ``row``, or None."""
    texts = (getattr(row, "translations", None) or {}).get(language)
    value = texts.get(field) if isinstance(texts, Mapping) else None
    return value if isinstance(value, str) and value else None


def localized(row: Any, field: str, localizer: Any) -> str:
    """``field`` of ``row`` for the reader of ``localizer``: the admin's translation, else the
    English as the catalog has it (a shipped name), else the English as typed."""
    english = getattr(row, field)
    if localizer is None:
        return english
    return translation(row, field, localizer.locale_name) or localize(localizer, english)


def checked_text(value: Any, where: str, subject: str, limit: int) -> str:
    """One translation as typed: trimmed text of at most ``limit`` characters; "" for none.
    BadTranslation names the form field ``where`` and says what is wrong with ``subject``
    ("The name in Russian")."""
    if value is None:
        return ""
    if not isinstance(value, str) or "\x00" in value:
        raise BadTranslation(where, f"{subject} must be plain text.")
    value = value.strip()
    if len(value) > limit:
        raise BadTranslation(
            where, f"{subject} is {len(value)} characters long; at most {limit} fit.", "too_long"
        )
    return value


def clean_text(value: Any, field: str, language: str, limit: int) -> str:
    """The ``language`` text of ``field`` as typed (:func:`checked_text`)."""
    subject = f"The {field} in {ENGLISH_NAMES[language]}"
    return checked_text(value, form_name(field, language), subject, limit)


def clean_translations(value: Any, limits: Mapping[str, int]) -> dict[str, dict[str, str]]:
    """An admin's translations of the plain text ``limits`` names (field → its longest),
    checked: ``{language: {field: text}}`` with only known languages and fields, blanks left
    out (the English shows instead). BadTranslation names the form field at fault."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadTranslation("translations", "The translations must be an object by language.")
    cleaned: dict[str, dict[str, str]] = {}
    for language, texts in value.items():
        if language not in TRANSLATED:
            raise BadTranslation(
                "translations",
                f"Translations are into {', '.join(TRANSLATED)}, not {str(language)[:8]!r}.",
            )
        if not isinstance(texts, Mapping):
            raise BadTranslation("translations", "Each language's translations are an object.")
        kept: dict[str, str] = {}
        for field, text in texts.items():
            if field not in limits:
                raise BadTranslation(
                    "translations", f"There is no translatable field {str(field)[:40]!r}."
                )
            text = clean_text(text, field, language, limits[field])
            if text:
                kept[field] = text
        if kept:
            cleaned[language] = kept
    return cleaned
