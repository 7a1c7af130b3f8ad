"""The API's documentation (DESIGN 4.10): the OpenAPI 3.1 document of every JSON route at
``/api/openapi.json``, and ``/docs/api`` where people read it (Swagger UI, vendored from npm
into ``static/vendor/swagger-ui``, no CDN).

The document is written by hand (``openapi.yaml``) and kept true by the tests: one validates it,
and schemathesis runs the live app against it (no 5xx, every answer as documented).
"""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    config.add_route("api.openapi", "/api/openapi.json")
    config.add_route("docs.api", "/docs/api")
    config.scan("nproxy_core.api_docs.views")
