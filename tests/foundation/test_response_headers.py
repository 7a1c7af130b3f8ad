"""A strict Content-Security-Policy with no inline script or style anywhere, the object store's
origin allowed for images, and no cache keeping pages or API answers."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from apiclient import ApiClient


def policy(response: Any) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {
        part.split()[0]: part.split()[1:] for part in (p.strip() for p in header.split(";")) if part
    }


class InlineFinder(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, styles and event handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style":
            self.found.append("<style>")
        # A JSON data block (the chat's catalog) is never run: the policy does not apply.
        data_block = dict(attrs).get("type") == "application/json"
        if tag == "script" and "src" not in names and not data_block:
            self.found.append("<script> without src")
        if "style" in names:
            self.found.append(f"style= on <{tag}>")
        self.found += [f"{name}= on <{tag}>" for name in names if name.startswith("on")]
        for name, value in attrs:
            if name in ("href", "src", "action") and (value or "").startswith("javascript:"):
                self.found.append(f"javascript: URL on <{tag}>")


def inline_code(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    return finder.found


@pytest.fixture
def customer(make_app, user_factory, make_cycle):
    app = make_app(nproxy__payments="demo")
    user = user_factory("pages@example.com", admin=True)
    make_cycle(user)
    api = ApiClient(app)
    assert api.login("pages@example.com").status_int == 200
    return app


PAGES = [
    "/",
    "/pricing",
    "/dashboard",
    "/account/password",
    "/billing",
    "/chat",
    "/forgot-password",
    "/does-not-exist",
    "/admin/telegram",
]


@pytest.mark.parametrize("path", PAGES)
def test_no_page_has_inline_script_or_style_and_each_has_the_policy(customer, path):
    page = customer.get(path, status="*", headers={"Accept": "text/html"})
    assert page.content_type == "text/html"
    assert inline_code(page.text) == []
    rules = policy(page)
    assert rules["script-src"] == ["'self'"]
    assert rules["style-src"] == ["'self'"]
    assert rules["object-src"] == ["'none'"]
    assert rules["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


def test_the_anonymous_pages_too(app):
    for path in ("/login", "/register", "/forgot-password", "/reset-password?token=x"):
        page = app.get(path)
        assert inline_code(page.text) == []
        assert page.headers["Cache-Control"] == "no-store"
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_api_answers_are_never_cached(customer):
    for path in ("/api/v1/session", "/api/v1/me", "/api/v1/plan", "/api/v1/conversations"):
        answer = customer.get(path)
        assert answer.headers["Cache-Control"] == "no-store", path
    refused = customer.get("/api/v1/generations/not-an-id", status=404)
    assert refused.headers["Cache-Control"] == "no-store"


def test_static_files_keep_their_own_caching(app):
    answer = app.get("/static/site.css")
    assert "max-age=3600" in answer.headers["Cache-Control"]


def test_images_may_come_from_the_object_store_when_media_redirects_there(make_app):
    app = make_app(
        nproxy__storage="s3",
        storage__s3__bucket="media",
        storage__s3__access_key="key",
        storage__s3__secret_key="secret",
        storage__s3__endpoint_url="http://127.0.0.1:9",
        storage__s3__public_endpoint_url="https://media.example.com",
    )
    rules = policy(app.get("/login"))
    assert rules["img-src"] == ["'self'", "data:", "blob:", "https://media.example.com"]
    assert rules["connect-src"] == ["'self'"]


def test_local_storage_allows_images_from_this_site_only(app):
    assert policy(app.get("/login"))["img-src"] == ["'self'", "data:", "blob:"]


def test_the_chat_scripts_hold_no_eval_or_inline_handlers():
    from pathlib import Path

    static = Path(__file__).resolve().parents[2] / "src/nproxy_core/static"
    for script in static.rglob("*.js"):
        if "vendor" in script.relative_to(static).parts:
            continue  # third-party files, served as published (the CSP still binds them)
        text = script.read_text()
        assert not re.search(r"\beval\(|new Function\(|setAttribute\(\s*['\"]on", text), script
        assert not re.search(r"setAttribute\(\s*['\"]style['\"]", text), script
        # el(tag, {style: "..."}) would set a style attribute: styles go as an object instead.
        assert not re.search(r"\bstyle:\s*[`'\"]", text), script
        assert ".innerHTML" not in text, script
