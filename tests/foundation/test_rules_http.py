"""Rules that hold for every route (DESIGN 6 and 9): CSRF on every unsafe route but the webhooks,
one JSON error shape for every error, and ``/healthz`` saying whether the database answers.

The routes are enumerated from the app's own registry, so a route added later is checked too.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
import webtest

from apiclient import ApiClient
from nproxy_core.db import import_models

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def row_counts(db: Any) -> dict[str, int]:
    db.expire_all()
    return {
        table.name: db.scalar(sa.select(sa.func.count()).select_from(table))
        for table in import_models().sorted_tables
    }


def unsafe_views(registry: Any) -> list[tuple[str, str, str, bool]]:
    """(route name, path pattern, method, require_csrf) of every view taking an unsafe method."""
    from pyramid.interfaces import IRoutesMapper

    patterns = {
        route.name: route.pattern for route in registry.getUtility(IRoutesMapper).get_routes()
    }
    found = set()
    for item in registry.introspector.get_category("views"):
        view = item["introspectable"]
        route_name = view["route_name"]
        # Static asset views (``__static/``) serve files for any method and change nothing.
        if route_name is None or route_name.startswith("__"):
            continue
        # An exception view only shapes the errors of its route's own views (the
        # OpenAI-compatible routes answer in OpenAI's shape): it serves no request itself.
        if view["exception_only"]:
            continue
        methods = view["request_methods"]
        if methods is None:
            methods = UNSAFE
        elif isinstance(methods, str):
            methods = (methods,)
        for method in methods:
            if method in UNSAFE:
                found.add((route_name, patterns[route_name], method, view["require_csrf"]))
    return sorted(found)


@pytest.fixture
def demo_app(make_app: Any) -> webtest.TestApp:
    return make_app(nproxy__payments="demo")


def logged_in(app: webtest.TestApp, email: str, db: Any = None) -> ApiClient:
    """A new account's session; an admin's when ``db`` is given.

    The admin's routes answer anyone but an admin 404 before CSRF is looked at (DESIGN 4.7),
    so only an admin's session shows that they check the token too.
    """
    client = ApiClient(webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"}))
    assert client.register(email).status_int == 201
    if db is not None:
        from nproxy_core.accounts.models import Role, User

        db.execute(sa.update(User).where(User.email == email).values(role=Role.ADMIN))
        db.commit()
    return client


def fill(pattern: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), pattern)


def test_every_unsafe_route_but_the_webhooks_needs_the_csrf_token(demo_app, db):
    registry = demo_app.app.registry
    views = unsafe_views(registry)
    routes = {name for name, *_ in views}
    # The enumeration found the app's real unsafe routes (so this test is not vacuous).
    assert {
        "api.register",
        "api.login",
        "api.logout",
        "api.billing.checkout",
        "api.conversations",
        "api.conversation.generations",
        "api.uploads",
        "billing.webhook",
    } <= routes

    owner = logged_in(demo_app, "owner@example.com", db)
    conversation = owner.post("/api/v1/conversations", {}).json["id"]
    order = owner.post("/api/v1/billing/checkout", {"processor": "demo"}).json["payment_id"]
    values = {"conversation_id": conversation, "order_id": order, "processor": "demo"}
    before = row_counts(db)

    checked = []
    for route_name, pattern, method, require_csrf in views:
        url = fill(pattern, values)
        if route_name == "billing.webhook":
            # Exempt from CSRF, checked by signature instead: refused, but not as CSRF.
            assert require_csrf is False
            res = owner.app.request(url, method=method, body=b"{}", expect_errors=True)
            assert res.status_int == 400, (url, res.status)
            assert "CSRF" not in res.text
            continue
        if pattern.startswith("/v1/"):
            # The developer API takes no cookies and so needs no CSRF token (DESIGN 4.10): a
            # logged-in browser's session does not authenticate it at all.
            assert require_csrf is False
            res = owner.app.request(url, method=method, body=b"{}", expect_errors=True)
            assert res.status_int == 401, (url, res.status)
            assert res.json["error"]["code"] == "invalid_api_key"
            checked.append(route_name)
            continue
        for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
            for accept in ("application/json", "text/html"):
                res = owner.app.request(
                    url,
                    method=method,
                    body=b'{"email": "x@example.com", "password": "long enough pw"}',
                    headers={"Accept": accept, "Content-Type": "application/json", **headers},
                    expect_errors=True,
                )
                assert res.status_int == 403, (method, url, res.status)
                if url.startswith("/api/") or accept == "application/json":
                    assert res.json["error"]["code"] == "forbidden", url
                    assert "CSRF" in res.json["error"]["message"]
        checked.append(route_name)
    assert row_counts(db) == before
    # Still logged in: the refused logout did nothing either.
    assert owner.get("/api/v1/me").status_int == 200
    assert len(checked) == len(views) - 1


def test_with_the_token_the_same_routes_are_not_refused_as_csrf(demo_app, db):
    # The other half of the rule: the 403 above comes from the missing token, not the route.
    views = unsafe_views(demo_app.app.registry)
    for route_name, pattern, method, _ in views:
        if route_name == "billing.webhook" or pattern.startswith("/v1/"):
            continue
        client = logged_in(demo_app, f"{uuid.uuid4().hex[:12]}@example.com", db)
        conversation = client.post("/api/v1/conversations", {}).json["id"]
        order = client.post("/api/v1/billing/checkout", {"processor": "demo"}).json["payment_id"]
        url = fill(pattern, {"conversation_id": conversation, "order_id": order})
        res = client.app.request(
            url,
            method=method,
            body=b"{}",
            headers={"Content-Type": "application/json", "X-CSRF-Token": client.csrf()},
            expect_errors=True,
        )
        assert res.status_int != 403, (route_name, res.text[:300])
        assert "CSRF" not in res.text


def assert_error_shape(res: webtest.TestResponse, status: int, code: str) -> None:
    assert res.status_int == status, res.text
    assert res.content_type == "application/json"
    body = res.json
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"].strip()
    assert set(error) <= {"code", "message", "fields"}
    assert "Traceback" not in res.text


def test_every_kind_of_json_error_has_the_one_shape(make_app, user_factory, make_cycle):
    app = make_app(nproxy__ratelimit__login="2/minute")
    api = ApiClient(app)
    # 401
    assert_error_shape(api.get("/api/v1/me"), 401, "not_authenticated")
    assert_error_shape(api.get("/api/v1/conversations"), 401, "not_authenticated")
    # 400: not JSON, not an object, a bad field
    assert_error_shape(
        app.post(
            "/api/v1/auth/register",
            b"{oops",
            content_type="application/json",
            headers={"X-CSRF-Token": api.csrf()},
            status="*",
        ),
        400,
        "validation_error",
    )
    assert_error_shape(api.post("/api/v1/auth/register", [1, 2]), 400, "validation_error")
    bad = api.post("/api/v1/auth/register", {"email": "nope", "password": "long enough"})
    assert_error_shape(bad, 400, "validation_error")
    assert "email" in bad.json["error"]["message"].lower()
    # 403: CSRF
    assert_error_shape(app.post_json("/api/v1/auth/login", {}, status="*"), 403, "forbidden")
    # 404: unknown API path, unknown things
    assert_error_shape(api.get("/api/v1/nothing-here"), 404, "not_found")
    user = user_factory("shape@example.com")
    assert api.login(user.email).status_int == 200
    assert_error_shape(api.get(f"/api/v1/generations/{uuid.uuid4()}"), 404, "not_found")
    assert_error_shape(api.get("/api/v1/conversations/not-a-uuid"), 404, "not_found")
    # 402: no subscription, then quota exhausted
    conversation = api.post("/api/v1/conversations", {}).json["id"]
    submit = f"/api/v1/conversations/{conversation}/generations"
    body = {"mode": "text_to_image", "prompt": "a cat", "resolution": "square"}
    assert_error_shape(api.post(submit, body), 402, "no_active_subscription")
    make_cycle(user, request_limit=1, used=1)
    assert_error_shape(api.post(submit, body), 402, "quota_exhausted")
    # 429
    api.logout()
    for _ in range(2):
        api.login(user.email, "wrong password!")
    limited = api.login(user.email)
    assert_error_shape(limited, 429, "rate_limited")
    assert "Retry-After" in limited.headers


def test_healthz_answers_200_with_a_database_and_503_without(make_app):
    assert make_app().get("/healthz").status_int == 200
    down = make_app(sqlalchemy__url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    res = down.get("/healthz", status="*")
    assert res.status_int == 503
    assert "Traceback" not in res.text
