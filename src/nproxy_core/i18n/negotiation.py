"""Which language a request speaks: the account's saved choice, then ``?lang=``, then the
``lang`` cookie, then ``Accept-Language``, then English (DESIGN 4.15)."""

from __future__ import annotations

from urllib.parse import parse_qs

from pyramid.request import Request
from sqlalchemy.exc import SQLAlchemyError

from nproxy_core.i18n import COOKIE, DEFAULT, LANGUAGES


def supported(code: object) -> str | None:
    """``code`` when it names an offered language (``ru``, ``RU``, ``ru-RU``), else None."""
    if not isinstance(code, str) or not code:
        return None
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else None


def saved_choice(request: Request) -> str | None:
    """The language the account of ``request`` saved, if it can be read. The error page of a
    request the database failed (a cut connection, a transaction to roll back) asks the
    database nothing more: it is written in the language the request itself asks for."""
    if isinstance(getattr(request, "exception", None), SQLAlchemyError):
        return None
    try:
        user = request.identity
    except SQLAlchemyError:
        return None
    return supported(getattr(user, "language", None))


def negotiate_locale(request: Request) -> str:
    """The locale name Pyramid's localizer uses for ``request``."""
    saved = saved_choice(request)
    if saved:
        return saved
    # Read from the raw query: an error page for a query that is not UTF-8 is negotiated too.
    asked_in_query = parse_qs(request.query_string, errors="replace").get("lang", [None])[-1]
    for asked in (asked_in_query, request.cookies.get(COOKIE)):
        chosen = supported(asked)
        if chosen:
            return chosen
    return request.accept_language.lookup(list(LANGUAGES), default=DEFAULT)
