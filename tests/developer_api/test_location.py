"""Every absolute URL the app makes names ``nproxy.public_url``, never the address a client
chose (issue 20, item 10): a ``Location`` built from the ``Host`` header would send a client
polling a job, or a browser after logging in, wherever the request claimed to be addressed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import webtest

from apiclient import PASSWORD, ApiClient

PUBLIC = "http://public.example:8080"
#: What an attacker (or a confused proxy) may put in front of the app.
SPOOFED = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "443",
}

SPOOFED_ENVIRON = {
    "HTTP_" + name.upper().replace("-", "_"): value for name, value in SPOOFED.items()
}


@pytest.fixture
def app(make_app):
    return make_app(nproxy__public_url=PUBLIC)


def public(url: str) -> str:
    """The path and query of an absolute URL on the public address (fails on any other)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC, url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_the_location_of_an_accepted_job_is_on_the_public_url(app, developer_factory):
    dev = developer_factory(app)
    accepted = dev.generate({"prompt": "a red bicycle"}, Prefer="wait=0", **SPOOFED)
    assert accepted.status_int == 202, accepted.text
    path = public(accepted.headers["Location"])
    assert re.fullmatch(r"/v1/generations/[0-9a-f-]{36}", path)

    polled = dev.get(path, **SPOOFED)
    assert polled.status_int == 200, polled.text
    if polled.json["status"] in ("queued", "running"):
        assert public(polled.headers["Location"]) == path


def test_redirects_name_the_public_url_whatever_the_host_header(app, customer_factory):
    customer = customer_factory(app)
    # A browser whose every request says it is addressed to evil.example (its cookie jar
    # follows that host, so its session works throughout).
    evil = ApiClient(webtest.TestApp(app.app, extra_environ=SPOOFED_ENVIRON))

    # A page for logged-in users only, asked without a session: sent to log in.
    to_login = evil.app.get("/dashboard", status=303)
    assert public(to_login.location) == "/login?next=%2Fdashboard"

    # Logging in with the form, sent on to a relative ``next`` (completed on the way out).
    logged_in = evil.app.post(
        "/login?next=/account/api-keys",
        {"email": customer.user.email, "password": PASSWORD, "csrf_token": evil.csrf()},
        status=303,
    )
    assert public(logged_in.location) == "/account/api-keys"
    # Already logged in, the login page sends on to the dashboard.
    assert public(evil.app.get("/login", status=303).location) == "/dashboard"

    # A revoke from the account page answers with a path.
    created = evil.post("/api/v1/api-keys", {"name": "to revoke"})
    assert created.status_int == 201, created.text
    revoked = evil.app.post(
        f"/account/api-keys/{created.json['id']}/revoke", {"csrf_token": evil.csrf()}, status=303
    )
    assert public(revoked.location) == "/account/api-keys?revoked=1"

    # Logging out: to the home page.
    out = evil.app.post("/logout", {"csrf_token": evil.csrf()}, status=303)
    assert public(out.location) == "/"


def test_absolute_urls_in_json_answers_are_on_the_public_url(app):
    document = app.get("/api/openapi.json", headers=SPOOFED).json
    assert [server["url"] for server in document["servers"]] == [PUBLIC]


def test_csrf_origin_checks_compare_with_the_public_url(make_app, customer_factory):
    """On an https public URL the origin of an unsafe request must be the public site's,
    whatever ``Host`` the app was reached with (a reverse proxy may rewrite it)."""
    app = make_app(nproxy__public_url="https://nproxy.example")
    secure = webtest.TestApp(
        app.app, extra_environ={"HTTP_HOST": "web:8000", "wsgi.url_scheme": "https"}
    )
    token = secure.get("/api/v1/session").json["csrf_token"]
    body = {"email": "nobody@example.com", "password": "wrong password"}
    ours = {"X-CSRF-Token": token, "Origin": "https://nproxy.example"}
    answered = secure.post_json("/api/v1/auth/login", body, headers=ours, status="*")
    assert answered.status_int == 401, answered.text  # past CSRF: the password is wrong

    theirs = {**ours, "Origin": "https://evil.example", "Host": "evil.example"}
    refused = secure.post_json("/api/v1/auth/login", body, headers=theirs, status="*")
    assert refused.status_int in (400, 403), refused.text
    assert "wrong" not in refused.text.lower()
