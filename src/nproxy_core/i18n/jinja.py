"""Jinja2's ``i18n`` extension wired to the translations of whoever a template speaks to: the
request's language, or the ``localizer`` a caller passes (an email to an account in its own
language). Babel's formatting of dates and numbers in the same language."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from jinja2 import pass_context, pass_eval_context
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from markupsafe import Markup
from pyramid.i18n import Localizer
from translationstring import TranslationString

from nproxy_core.i18n import DEFAULT, DOMAIN, LANGUAGES, _, localize
from nproxy_core.i18n.fields import localized as localized_field
from nproxy_core.i18n.localizers import script_catalog_json

#: Where a render keeps the localizer it found, in the render's own dict of values (a page
#: asks for it once per message: ~80 times on the chat page).
_FOUND = "_nproxy_localizer"


def context_localizer(context: Context) -> Localizer | None:
    """The ``localizer`` the caller passed (a mail), else the request's, found once per render."""
    values = context.parent
    try:
        return values[_FOUND]
    except KeyError:
        pass
    localizer = values.get("localizer")
    if not isinstance(localizer, Localizer):
        localizer = getattr(values.get("request"), "localizer", None)
    values[_FOUND] = localizer
    return localizer


def context_locale(context: Context) -> str:
    localizer = context_localizer(context)
    return localizer.locale_name if localizer is not None else DEFAULT


def _moment(value: dt.datetime | str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@pass_context
def local_datetime(context: Context, value: dt.datetime | str | None) -> str:
    """``21 Dec 2026, 13:54 UTC``, as ``templating.human_datetime`` writes it, with the month
    in the reader's language."""
    if value is None or value == "":
        return ""
    moment = _moment(value).astimezone(dt.UTC)
    return format_datetime(
        moment, "d MMM y, HH:mm", tzinfo=dt.UTC, locale=context_locale(context)
    ) + (" UTC")


@pass_context
def local_date(context: Context, value: dt.date | dt.datetime | str | None) -> str:
    """``21 Dec 2026``: a day, the month in the reader's language."""
    if value is None or value == "":
        return ""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        day = value
    else:
        day = _moment(value).astimezone(dt.UTC).date()
    return format_date(day, "d MMM y", locale=context_locale(context))


@pass_context
def local_number(context: Context, value: int | float | Decimal | None) -> str:
    """``1 234,5`` in Russian, ``1,234.5`` in English: a number in the reader's language."""
    if value is None:
        return ""
    return format_decimal(value, locale=context_locale(context))


@pass_context
def local_money(context: Context, value: Decimal | None) -> str:
    """A price as written in the reader's language: at least two decimals, more only when the
    amount has them (crypto amounts have eight), no grouping, as ``billing.models.decimal_text``
    writes it in English: ``4.50``, ``4,50`` in Russian."""
    if value is None:
        return ""
    return format_decimal(value.normalize(), "0.00########", locale=context_locale(context))


@pass_context
def time_left(
    context: Context, value: dt.datetime | str | None, now: dt.datetime | None = None
) -> str:
    """``12 days left``, ``1 day left`` or ``less than a day left`` until ``value``, in the
    reader's language (``templating.days_left`` in English)."""
    if value is None or value == "":
        return ""
    days = (_moment(value) - (now or dt.datetime.now(dt.UTC))).days
    localizer = context_localizer(context)
    if days < 1:
        message = _("less than a day left")
        return message if localizer is None else localizer.translate(message)
    if localizer is None:
        return f"{days} day{'s' if days != 1 else ''} left"
    return localizer.pluralize("%(num)s day left", "%(num)s days left", days) % {"num": days}


@pass_context
def translate(context: Context, value: str) -> str:
    """A string marked elsewhere (``_()`` in Python), in the reader's language."""
    localizer = context_localizer(context)
    return value if localizer is None else localize(localizer, value)


@pass_context
def localized(context: Context, row: Any, field: str = "name") -> str:
    """``field`` of an admin's row (a plan, a pack) in the reader's language: the admin's
    translation, else the English (``i18n.fields``)."""
    return localized_field(row, field, context_localizer(context))


@pass_context
def size_label(context: Context, size: tuple[str, str]) -> str:
    """``Square (1:1)`` from a shape's name and its aspect ratio, the name translated."""
    label, ratio = size
    label = translate(context, label)
    return f"{label} ({ratio})" if ratio else label


def here(request: Any) -> str:
    """The path and query of ``request``, for the picker to come back to; never failing on a
    path that is not UTF-8 (error pages have a picker too)."""
    path = request.environ.get("PATH_INFO", "").encode("latin-1", "replace")
    path = path.decode("utf-8", "replace")
    query = request.environ.get("QUERY_STRING", "")
    return request.environ.get("SCRIPT_NAME", "") + path + (f"?{query}" if query else "")


FILTERS = {
    "translate": translate,
    "localized": localized,
    "time_left": time_left,
    "size_label": size_label,
    "local_datetime": local_datetime,
    "local_date": local_date,
    "local_number": local_number,
    "local_money": local_money,
}


def _text(localizer: Localizer | None, message: str) -> tuple[str, bool]:
    """``message`` in ``localizer``'s language, and whether it is the template author's own
    text (safe under autoescaping) rather than a string marked in Python and filled with values
    from anywhere."""
    if localizer is None:
        return message, True
    if isinstance(message, TranslationString):
        return localizer.translate(message), False
    # The catalog itself: Pyramid's ``translate`` would build a TranslationString a call.
    return localizer.translations.gettext(message), True


def _filled(eval_ctx: EvalContext, text: str, values: dict[str, Any]) -> str:
    if eval_ctx.autoescape:
        text = Markup(text)  # noqa: S704 - the template's own message, as Jinja2 marks it
    return text % values if values or "%" in text else text


# Jinja2's own newstyle callables wrap ours in a second call through the context and always
# apply ``%``; these do the same work in one call and apply ``%`` only when it changes the
# text (values to fill, or a ``%%``). The globals below take the render's context, to find the
# localizer; :func:`translators` are bound to one localizer and take only the evaluation
# context, which spares Jinja2 a derived context per call inside a block that sets variables
# (most of a translated page's extra rendering time).
@pass_context
def gettext(context: Context, message: str, **values: Any) -> str:
    """``_()``, ``gettext()`` and ``{% trans %}``: the message in the reader's language, marked
    safe under autoescaping (its text is the template author's) and filled with ``values``
    (escaped)."""
    text, own = _text(context_localizer(context), message)
    return _filled(context.eval_ctx, text, values) if own else text


@pass_context
def ngettext(context: Context, singular: str, plural: str, n: int, **values: Any) -> str:
    """``ngettext()`` and ``{% trans count=... %}``: the form for ``n`` in the reader's
    language, ``%(num)s`` being ``n``."""
    localizer = context_localizer(context)
    if localizer is None:
        text = singular if n == 1 else plural
    else:
        text = localizer.translations.ngettext(singular, plural, n)
    values.setdefault("num", n)
    return _filled(context.eval_ctx, text, values)


def translators(localizer: Localizer) -> dict[str, Any]:
    """``gettext``, ``_`` and ``ngettext`` speaking ``localizer``'s language, for one render's
    values (they outrank the globals above)."""

    @pass_eval_context
    def bound_gettext(eval_ctx: EvalContext, message: str, **values: Any) -> str:
        text, own = _text(localizer, message)
        return _filled(eval_ctx, text, values) if own else text

    @pass_eval_context
    def bound_ngettext(
        eval_ctx: EvalContext, singular: str, plural: str, n: int, **values: Any
    ) -> str:
        values.setdefault("num", n)
        return _filled(eval_ctx, localizer.translations.ngettext(singular, plural, n), values)

    return {"gettext": bound_gettext, "_": bound_gettext, "ngettext": bound_ngettext}


class Gettext:
    """``jinja2.i18n.gettext`` for pyramid_jinja2, which installs these through Jinja2's own
    wrappers; :func:`configure_environment` then puts them in the templates' globals as they
    are. They take the template's context instead of a thread-local request, so a template
    rendered for a mail or outside a request speaks the language it was given."""

    gettext = staticmethod(gettext)
    ngettext = staticmethod(ngettext)

    def __init__(self, domain: str = DOMAIN) -> None:
        self.domain = domain


def configure_environment(environment: Any) -> None:
    """The project's i18n settings on a Jinja2 environment: ``{% trans %}`` blocks are trimmed
    (so a wrapped paragraph is one message), and the locale-aware filters."""
    environment.policies["ext.i18n.trimmed"] = True
    environment.globals.update(gettext=gettext, _=gettext, ngettext=ngettext)
    environment.filters.update(FILTERS)
    environment.globals["languages"] = LANGUAGES
    environment.globals["here"] = here
    environment.globals["script_catalog"] = script_catalog_json
