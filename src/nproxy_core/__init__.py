"""nproxy: AI image generation behind a monthly crypto subscription."""

from __future__ import annotations

from typing import Any

from nproxy_core.config import ConfigurationError, configure


def main(global_config: dict[str, Any], **settings: Any) -> Any:
    """The paste app factory for ``pserve``, waitress and gunicorn."""
    try:
        return configure(settings).make_wsgi_app()
    except ConfigurationError as exc:
        # One clear line, not a traceback.
        raise SystemExit(f"nproxy: configuration error: {exc}") from None
