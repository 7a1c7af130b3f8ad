"""The chat pages: a shell for logged-in users that loads its data from the JSON API."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin

#: What browsers accept for a module script (the type depends on the platform's mime.types).
JAVASCRIPT_TYPES = {"text/javascript", "application/javascript"}
#: The module named by an ``import ... from "..."`` (or ``export ... from``) statement.
IMPORT_FROM = re.compile(r'^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"', re.MULTILINE)


def test_chat_needs_a_logged_in_user(app: Any) -> None:
    response = app.get("/chat", status=303)
    assert "/login?next=%2Fchat" in response.location


def test_chat_page_is_the_shell_with_its_assets(api: Any) -> None:
    api.register("chatter@example.com")
    page = api.get("/chat")
    assert page.status_code == 200
    html = page.text
    # The script reads the CSRF token from the meta tag of base.html.
    assert '<meta name="csrf-token" content="' in html
    assert "/static/chat.js" in html and "/static/chat.css" in html
    assert 'data-conversation-id=""' in html
    # Every logged-in page links to the chat.
    assert page.html.select_one('header nav a[href="/chat"]') is not None


def test_conversation_address_opens_that_thread(api: Any) -> None:
    api.register("chatter@example.com")
    page = api.get("/chat/3f1c2a4e-0000-4000-8000-000000000000")
    assert page.status_code == 200
    # Ownership is the API's business: the page only passes the id on to chat.js.
    assert 'data-conversation-id="3f1c2a4e-0000-4000-8000-000000000000"' in page.text


def test_static_assets_are_served(app: Any) -> None:
    assert "function" in app.get("/static/chat.js").text
    assert ".chat" in app.get("/static/chat.css").text


def test_chat_modules_and_their_imports_are_served_as_javascript(app: Any) -> None:
    # Browsers refuse a module script served as anything but JavaScript (and every answer says
    # nosniff), and resolve its relative imports against its own URL under /static/.
    seen: set[str] = set()
    pending = ["/static/chat.js"]
    while pending:
        url = pending.pop()
        seen.add(url)
        response = app.get(url)
        assert response.content_type in JAVASCRIPT_TYPES, f"{url} is {response.content_type}"
        for target in IMPORT_FROM.findall(response.text):
            assert target.startswith("./"), f"{url} imports {target!r}: keep imports relative"
            imported = urljoin(url, target)
            if imported not in seen:
                pending.append(imported)
    assert "/static/chat/api.js" in seen and len(seen) > 2
