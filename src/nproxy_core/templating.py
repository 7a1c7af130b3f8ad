"""Jinja2 set-up: templates live in the top-level ``templates/`` folder, one sub-folder per
feature."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

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


def includeme(config: Any) -> None:
    settings = config.get_settings()
    settings.setdefault("jinja2.filters", "human_datetime = nproxy_core.templating:human_datetime")
    folder = settings.get("jinja2.directories") or str(TEMPLATES)
    settings["jinja2.directories"] = folder
    settings.setdefault("jinja2.autoescape", "true")
    settings.setdefault("jinja2.trim_blocks", "true")
    settings.setdefault("jinja2.lstrip_blocks", "true")
    config.add_jinja2_renderer(".html")
    config.add_jinja2_search_path(folder, name=".html")
    config.add_static_view("static", "nproxy_core:static", cache_max_age=3600)
