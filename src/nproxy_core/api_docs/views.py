"""``/api/openapi.json`` and ``/docs/api``."""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml
from pyramid.request import Request
from pyramid.view import view_config


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as written in openapi.yaml (read once)."""
    text = resources.files("nproxy_core.api_docs").joinpath("openapi.yaml").read_text()
    return yaml.safe_load(text)


@view_config(route_name="api.openapi", request_method="GET", renderer="json")
def openapi_json(request: Request) -> dict[str, Any]:
    document = copy.deepcopy(openapi_document())
    # Absolute, so the examples a client copies point at this deployment.
    document["servers"] = [{"url": request.registry.settings["nproxy.public_url"]}]
    request.response.headers["Cache-Control"] = "public, max-age=300"
    return document


@view_config(route_name="docs.api", request_method="GET", renderer="api_docs/docs.html")
def docs_page(request: Request) -> dict[str, Any]:
    return {}
