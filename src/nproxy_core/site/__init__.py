"""The public face: landing page and health check."""

from typing import Any


def includeme(config: Any) -> None:
    config.add_route("home", "/")
    config.add_route("healthz", "/healthz")
    config.scan("nproxy_core.site.views")
