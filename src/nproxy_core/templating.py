"""Jinja2 set-up: templates live in the top-level ``templates/`` folder, one sub-folder per
feature."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyramid_jinja2

from nproxy_core.i18n import DOMAIN, _, localizable
from nproxy_core.i18n.jinja import configure_environment
from nproxy_core.i18n.rendering import add_localized_jinja2_renderer

#: The project's ``templates/`` folder; found next to ``src/`` in a checkout and an install
#: made with ``pip install -e .``, or at ``NPROXY_TEMPLATES`` when packaged elsewhere.
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def human_datetime(value: dt.datetime | str | None) -> str:
    """``21 Dec 2026, 13:54 UTC`` from a datetime or an ISO 8601 string."""
    if value is None or value == "":
        return ""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%-d %b %Y, %H:%M UTC")


def days_left(value: dt.datetime | str | None, now: dt.datetime | None = None) -> str:
    """``12 days left``, ``1 day left`` or ``less than a day left`` until ``value``."""
    if value is None or value == "":
        return ""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    days = (moment - (now or dt.datetime.now(dt.UTC))).days
    if days < 1:
        return "less than a day left"
    return f"{days} day{'s' if days != 1 else ''} left"


# Order matters: Edge says Chrome and Safari too, Chrome says Safari.
_BROWSERS = (
    ("Edg/", "Edge"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def device_name(user_agent: str | None) -> str:
    """``Chrome on Linux``: a User-Agent header in words, for the list of a user's sessions."""
    agent = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in agent), None)
    # Marked for the customer's pages (``| translate``), English wherever it is used as text.
    if browser and system:
        return localizable(
            _("${browser} on ${system}", mapping={"browser": browser, "system": system})
        )
    return browser or system or localizable(_("Unknown browser"))


def timestamp(value: dt.datetime | None) -> str:
    """``2026-12-21 13:54:07`` (UTC): exact, for admins and logs of events."""
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """How long ago (or how far ahead) a moment is, roughly: ``42 s ago``, ``in 3 min``."""
    if value is None:
        return ""
    seconds = ((now or dt.datetime.now(dt.UTC)) - value).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            break
    else:
        amount = f"{int(seconds)} s"
    return f"in {amount}" if future else f"{amount} ago"


#: What a table cell shows for a number that does not exist (nothing to divide, no value).
NO_VALUE = "\N{EN DASH}"


def percent(rate: float | None) -> str:
    """``97.5 %`` from 0.975; a dash when there is nothing to divide."""
    return NO_VALUE if rate is None else f"{rate * 100:.1f} %"


def account_label(email: str | None, user_id: int) -> str:
    """How admin pages name an account: its email, or ``Telegram user #12`` for an account made
    in the customer bot, which has none."""
    return email or f"Telegram user #{user_id}"


def money(value: Decimal | None) -> str:
    """An amount as written, never in exponent notation and without trailing zeros: ``100``
    XTR, ``9.99`` USD, ``0.00012345`` BTC (a bare ``Decimal.normalize()`` prints ``1E+2``);
    empty for no amount. Pages, bots, review reasons and JSON answers all write amounts so."""
    return "" if value is None else format(value.normalize(), "f")


def milliseconds(value: float | None) -> str:
    """``1,234 ms``; a dash when unknown."""
    return NO_VALUE if value is None else f"{value:,.0f} ms"


FILTERS = (
    "human_datetime",
    "days_left",
    "device_name",
    "timestamp",
    "ago",
    "percent",
    "milliseconds",
    "money",
    "account_label",
)


def includeme(config: Any) -> None:
    # pyramid_jinja2's directives, without its own ``.jinja2`` renderer, which no template here
    # uses and whose set-up reads the whole call stack's source each time the app is configured.
    for directive in (
        pyramid_jinja2.add_jinja2_renderer,
        pyramid_jinja2.add_jinja2_search_path,
        pyramid_jinja2.add_jinja2_extension,
        pyramid_jinja2.get_jinja2_environment,
    ):
        config.add_directive(directive.__name__, directive)
    settings = config.get_settings()
    settings.setdefault(
        "jinja2.filters",
        "\n".join(f"{name} = nproxy_core.templating:{name}" for name in FILTERS),
    )
    folder = settings.get("jinja2.directories") or str(TEMPLATES)
    settings["jinja2.directories"] = folder
    settings.setdefault("jinja2.autoescape", "true")
    settings.setdefault("jinja2.trim_blocks", "true")
    settings.setdefault("jinja2.lstrip_blocks", "true")
    # Jinja2's i18n extension speaks the request's language, or the one a mail is written in.
    settings.setdefault("jinja2.i18n.domain", DOMAIN)
    settings.setdefault("jinja2.i18n.gettext", "nproxy_core.i18n.jinja:Gettext")
    settings.setdefault("jinja2.newstyle", "true")
    add_localized_jinja2_renderer(config, ".html", "jinja2.")
    config.add_jinja2_search_path(folder, name=".html")
    # Plain-text email templates (templates/email/...): the same folder and filters, but no
    # HTML escaping, which would garble links and quotes in a text/plain message.
    for key in (
        "directories",
        "filters",
        "trim_blocks",
        "lstrip_blocks",
        "i18n.domain",
        "i18n.gettext",
        "newstyle",
    ):
        settings.setdefault(f"jinja2_text.{key}", settings[f"jinja2.{key}"])
    settings.setdefault("jinja2_text.autoescape", "false")
    add_localized_jinja2_renderer(config, ".txt", "jinja2_text.")
    config.add_jinja2_search_path(folder, name=".txt")
    for renderer in (".html", ".txt"):
        config.action(
            None,
            lambda name=renderer: configure_environment(config.get_jinja2_environment(name)),
            order=999,
        )
    config.add_static_view("static", "nproxy_core:static", cache_max_age=3600)
