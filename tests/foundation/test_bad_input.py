"""Bad input gets a clear 4xx and changes nothing (DESIGN 9): bodies over the limit are refused
before they are read, and malformed paths, queries, charsets, JSON and multipart never reach a
view that would fail on them. Each case here once answered 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from apiclient import ApiClient
from nproxy_core.accounts.models import User
from nproxy_core.generation.models import Conversation
from rawwsgi import RawRequest, call

MiB = 1024 * 1024


@pytest.fixture
def logged_in(app: Any, user_factory: Any) -> dict[str, str]:
    """Headers of a logged-in session: its cookie and its CSRF token."""
    user_factory("fuzz@example.com")
    api = ApiClient(app)
    assert api.login("fuzz@example.com").status_int == 200
    cookie = "; ".join(f"{c.name}={c.value}" for c in app.cookiejar)
    return {"Cookie": cookie, "X-CSRF-Token": api.csrf()}


def assert_clear_refusal(response: Any, status: int, code: str | None = None) -> None:
    assert response.status == status, (response.status, response.text[:500])
    assert "Traceback" not in response.text
    # The security headers go out with refusals too.
    assert response.headers.get("x-content-type-options") == "nosniff"
    if code is not None:
        assert json.loads(response.body)["error"]["code"] == code


def post(app: Any, path: bytes, headers: dict[str, str], content_type: str, body: bytes) -> Any:
    """POST ``body`` as ``content_type`` straight to the WSGI app; the answer."""
    request = RawRequest("POST", path, headers={**headers, "Content-Type": content_type}, body=body)
    return call(app.app, request)[0]


# --- bodies over nproxy.max_body_bytes --------------------------------------------------------


def endless(chunk: bytes = b"[" * 65536) -> Any:
    while True:
        yield chunk


def test_an_announced_body_over_the_limit_is_refused_unread(app):
    body = b"[" * (12 * MiB + 1)
    response, read = call(
        app.app,
        RawRequest(
            "POST", b"/api/v1/auth/login", headers={"Content-Type": "application/json"}, body=body
        ),
    )
    assert_clear_refusal(response, 413, "payload_too_large")
    assert "12 MB" in json.loads(response.body)["error"]["message"]
    assert read == 0


def test_a_chunked_body_is_read_no_further_than_the_limit(make_app):
    app = make_app(nproxy__max_body_bytes=str(MiB))
    response, read = call(
        app.app,
        RawRequest(
            "POST",
            b"/api/v1/auth/login",
            headers={"Content-Type": "application/json"},
            chunks=endless(),
        ),
    )
    assert_clear_refusal(response, 413, "payload_too_large")
    # Never more than the limit and the chunk that crossed it.
    assert MiB < read <= MiB + 65536


def test_a_small_chunked_body_is_still_accepted(app, user_factory):
    user_factory("chunked@example.com")
    body = json.dumps({"email": "chunked@example.com", "password": "wrong password"}).encode()
    response, _ = call(
        app.app,
        RawRequest(
            "POST",
            b"/api/v1/auth/login",
            headers={"Content-Type": "application/json"},
            chunks=[body[:10], body[10:]],
        ),
    )
    # The body was read and understood (and CSRF checked): a refusal of the request itself.
    assert response.status == 403
    assert json.loads(response.body)["error"]["code"] == "forbidden"


def test_a_garbled_content_length_is_a_400(app):
    request = RawRequest("POST", b"/api/v1/auth/login", body=b"{}")
    environ_headers = {"Content-Length": "12abc", "Content-Type": "application/json"}
    request.headers.update(environ_headers)
    response, read = call(app.app, request)
    assert_clear_refusal(response, 400, "validation_error")
    assert read == 0


def test_the_limit_is_a_setting_checked_at_start_up(make_app):
    from nproxy_core.config import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"nproxy\.max_body_bytes"):
        make_app(nproxy__max_body_bytes="twelve")


# --- paths and queries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [b"/api/v1/generations/\xff", b"/chat/\xed\xa0\x80", b"/nothing/\xc3", b"/login\xff"],
)
def test_an_undecodable_path_is_a_400_with_headers(app, logged_in, path):
    response, _ = call(app.app, RawRequest("GET", path, headers=logged_in))
    assert_clear_refusal(response, 400)


def test_an_undecodable_path_gets_a_page_when_a_person_asks(app):
    response, _ = call(app.app, RawRequest("GET", b"/\xff", headers={"Accept": "text/html"}))
    assert_clear_refusal(response, 400)
    assert response.headers["content-type"].startswith("text/html")
    assert "percent-escape" in response.text


@pytest.mark.parametrize("query", ["next=%ff", "next=%ed%a0%80", "%ff=1", "next=a%00b"])
def test_an_undecodable_or_nul_query_is_a_400(app, query):
    response, _ = call(app.app, RawRequest("GET", b"/login", query=query))
    assert_clear_refusal(response, 400)


def test_a_nul_in_a_path_id_never_reaches_the_database(app, logged_in):
    for path in (b"/billing/payments/a\x00b/success", b"/api/v1/conversations/\x00"):
        response, _ = call(app.app, RawRequest("GET", path, headers=logged_in))
        assert_clear_refusal(response, 400)


# --- bodies the views cannot read -------------------------------------------------------------


def test_an_unknown_charset_is_a_415(app, logged_in):
    for charset in ("bogus", "zlib", "rot13"):
        response, _ = call(
            app.app,
            RawRequest(
                "POST",
                b"/api/v1/conversations",
                headers={**logged_in, "Content-Type": f"application/json; charset={charset}"},
                body=b'{"title": "x"}',
            ),
        )
        assert_clear_refusal(response, 415, "unsupported_media_type")


def test_a_body_that_does_not_decode_in_its_charset_is_a_400(app, logged_in):
    response = post(
        app,
        b"/api/v1/conversations",
        logged_in,
        "application/json; charset=utf-8",
        b'{"title": "\xff"}',
    )
    assert_clear_refusal(response, 400, "validation_error")


def test_deeply_nested_json_is_a_400(app, logged_in, db):
    for body in (b"[" * 5000, b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        response = post(app, b"/api/v1/conversations", logged_in, "application/json", body)
        assert_clear_refusal(response, 400, "validation_error")
    assert db.scalar(sa.select(sa.func.count()).select_from(Conversation)) == 0


def test_multipart_without_a_boundary_is_a_400(app, logged_in):
    response = post(
        app,
        b"/api/v1/uploads",
        logged_in,
        "multipart/form-data",
        b"--x\r\nContent-Disposition: form-data; name=file\r\n\r\nabc\r\n--x--\r\n",
    )
    assert_clear_refusal(response, 400, "validation_error")
    assert "boundary" in json.loads(response.body)["error"]["message"]


# --- NUL and lone surrogates in strings -------------------------------------------------------


NUL_OR_SURROGATE = ["a\u0000b@example.com", "a\ud800@example.com"]


@pytest.mark.parametrize("email", NUL_OR_SURROGATE)
def test_nul_or_surrogate_in_an_email_is_a_400(api, db, email):
    for route in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/password-reset"):
        response = api.post(
            route,
            params=json.dumps({"email": email, "password": "long enough pw"}),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_int == 400, (route, response.text)
    assert db.scalar(sa.select(sa.func.count()).select_from(User)) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"token": "abc\ud800", "password": "long enough pw"},
        {"token": "abc", "password": "long enough \ud800"},
        {"token": "abc\u0000", "password": "long enough pw"},
    ],
)
def test_nul_or_surrogate_in_a_reset_token_or_password_is_a_400(api, body):
    response = api.post(
        "/api/v1/auth/password-reset/confirm",
        params=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_int == 400
    assert response.json["error"]["code"] == "validation_error"


def test_a_surrogate_in_a_password_at_login_is_a_400(api, user_factory):
    user_factory("sur@example.com")
    response = api.post(
        "/api/v1/auth/login",
        params=json.dumps({"email": "sur@example.com", "password": "x\udfff"}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_int == 400


@pytest.mark.parametrize("title", ["a\u0000b", "a\udc80b"])
def test_nul_or_surrogate_in_a_conversation_title_is_a_400(app, logged_in, db, title):
    response = post(
        app,
        b"/api/v1/conversations",
        logged_in,
        "application/json",
        json.dumps({"title": title}).encode(),
    )
    assert_clear_refusal(response, 400, "validation_error")
    assert db.scalar(sa.select(sa.func.count()).select_from(Conversation)) == 0


def test_nul_in_a_form_field_is_a_400(app):
    response, _ = call(
        app.app,
        RawRequest(
            "POST",
            b"/login",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
            body=b"email=a%00b%40example.com&password=x",
        ),
    )
    assert_clear_refusal(response, 400)


# --- implausible addresses --------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "<a@example.com>",
        "Name <a@example.com>",
        '"a b"@example.com',
        "a b@example.com",
        "a,b@example.com",
        "a@b",
        "a@[127.0.0.1]",
    ],
)
def test_implausible_emails_are_refused_at_registration(api, db, email):
    response = api.register(email)
    assert response.status_int == 400
    assert response.json["error"]["fields"] == {"email": "invalid"}
    assert "email address" in response.json["error"]["message"]
    assert db.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_an_internationalised_address_is_one_account_in_either_spelling(api, db):
    assert api.register("Anna@Bücher.de").status_int == 201
    api.logout()
    assert api.register("anna@xn--bcher-kva.de").json["error"]["fields"] == {"email": "taken"}
