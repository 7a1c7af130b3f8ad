"""Localizers by language, for what speaks to someone other than the request's sender (an
email to an account, a message of the customer bot), and the chat's JavaScript catalog."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from pyramid.i18n import Localizer, make_localizer
from pyramid.interfaces import ILocalizer, ITranslationDirectories
from pyramid.registry import Registry

from nproxy_core.i18n import DEFAULT
from nproxy_core.i18n.negotiation import supported

#: The compiled catalogs (``.mo`` and the chat's ``.json``), made by the package build.
LOCALE = Path(__file__).resolve().parent.parent / "locale"

#: The order of a language's gettext plural forms, by CLDR category, so the chat's JavaScript
#: can pick a form with ``Intl.PluralRules`` (``Plural-Forms`` of the catalogs; an expression
#: to evaluate would need ``eval``, which the page's CSP forbids).
PLURAL_CATEGORIES: dict[str, tuple[str, ...]] = {
    "en": ("one", "other"),
    "ru": ("one", "few", "many"),
    "uz": ("one", "other"),
}


def localizer_for(registry: Registry, language: str | None) -> Localizer:
    """The localizer for ``language`` (English when it is not offered), made once per process
    and shared with the requests that speak it."""
    name = supported(language) or DEFAULT
    localizer = registry.queryUtility(ILocalizer, name=name)
    if localizer is None:
        directories = registry.queryUtility(ITranslationDirectories, default=[])
        localizer = make_localizer(name, directories)
        registry.registerUtility(localizer, ILocalizer, name=name)
    return localizer


@cache
def catalog_localizer(language: str | None) -> Localizer:
    """The localizer for ``language`` read from the catalogs alone, for what has no registry
    at hand: the customer bot's texts."""
    return make_localizer(supported(language) or DEFAULT, [str(LOCALE)])


@cache
def script_catalog(language: str) -> dict[str, Any]:
    """The chat's JavaScript strings in ``language``: ``{"plural": [...], "messages": {msgid:
    translation or [plural forms]}}``, from the catalog the build wrote (empty for English)."""
    path = LOCALE / language / "LC_MESSAGES" / "script.json"
    messages = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    return {"plural": list(PLURAL_CATEGORIES.get(language, ("one", "other"))), "messages": messages}


@cache
def script_catalog_json(language: str) -> Markup:
    """:func:`script_catalog` as JSON safe to embed in a page's ``<script type=
    "application/json">`` (``<``, ``>``, ``&`` escaped), made once per language."""
    return htmlsafe_json_dumps(script_catalog(language))
