"""The OpenAPI document (DESIGN 4.10): valid OpenAPI 3.1, complete (every JSON route is in it),
served with its reader page, and true: schemathesis runs the live app against it and every
answer is as documented, with no 5xx."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apiclient import ApiClient
from nproxy_core.api_docs.views import openapi_document


def _json_routes(app) -> set[str]:
    """The app's JSON route patterns, in OpenAPI's path syntax."""
    patterns = {route.pattern for route in app.app.routes_mapper.get_routes()}
    return {
        re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", p)
        for p in patterns
        if p.startswith(("/api/v1/", "/v1/"))
    }


def test_the_served_document_is_valid_openapi_3_1(app):
    document = app.get("/api/openapi.json").json
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": "http://localhost"}]


def test_every_json_route_is_in_the_document(app):
    documented = set(openapi_document()["paths"])
    missing = _json_routes(app) - documented
    assert not missing, f"routes missing from openapi.yaml: {sorted(missing)}"
    # And nothing documented that the app does not have.
    assert documented - _json_routes(app) <= {"/healthz"}


def test_the_docs_page_renders_the_document_with_vendored_files(app):
    page = app.get("/docs/api")
    assert 'data-spec="/api/openapi.json"' in page.text
    scripts = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert any("vendor/swagger-ui/swagger-ui-bundle.js" in s for s in scripts)
    assert "http" not in " ".join(scripts)  # nothing from a CDN
    for path in scripts:
        assert app.get(path).status_int == 200, path


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzzed(make_app, user_factory, make_cycle):
    """The app, a logged-in subscriber (cookie and CSRF token) and their API key."""
    # No worker runs here: a valid POST /v1/generate waits out its wait and answers 202, so
    # the wait is short (the developer API tests run a worker and get their 200 answers).
    app = make_app(nproxy__api__rate_limit="100000/minute", nproxy__api__max_wait_seconds="0.2")
    user = user_factory()
    make_cycle(user)
    client = ApiClient(app)
    assert client.login(user.email).status_int == 200
    key = client.post("/api/v1/api-keys", {"name": "fuzz"}).json["key"]
    cookie = "; ".join(f"{k}={v}" for k, v in app.cookies.items())
    return app, cookie, client.csrf(), key


schema = schemathesis.openapi.from_dict(openapi_document()).exclude(
    # Logging out would end the session the other operations use; it has tests of its own.
    operation_id="logout"
)


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_app_answers_as_its_document_says(case, fuzzed):
    app, cookie, csrf, key = fuzzed
    if case.path.startswith("/v1/"):
        headers = {"Authorization": f"Bearer {key}"}
    else:
        headers = {"Cookie": cookie, "X-CSRF-Token": csrf}
    case.call_and_validate(app=app.app, headers=headers, checks=CHECKS)
