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
    pending = ["/static/chat.js", "/static/library.js"]
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


def test_library_needs_a_login_and_is_a_shell_with_the_lightbox(app: Any, api: Any) -> None:
    assert "/login?next=%2Flibrary" in app.get("/library", status=303).location
    api.register("collector@example.com")
    page = api.get("/library")
    assert page.status_code == 200
    assert "/static/library.js" in page.text
    assert page.html.select_one("#library-grid") is not None
    assert page.html.select_one("dialog#lightbox #lightbox-open") is not None
    assert page.html.select_one('header nav a[href="/library"]') is not None


def test_every_page_has_a_skip_link_a_favicon_and_the_pricing_link(app: Any) -> None:
    for path in ("/", "/pricing", "/login", "/register"):
        page = app.get(path)
        skip = page.html.select_one("a.skip-link")
        assert skip is not None and skip["href"] == "#main", path
        assert page.html.select_one("main#main") is not None, path
        assert page.html.select_one('link[rel="icon"]') is not None, path
        assert page.html.select_one('header nav a[href="/pricing"]') is not None, path
    assert app.get("/static/favicon.svg").content_type == "image/svg+xml"


def test_landing_and_pricing_say_what_a_month_buys_with_example_pictures(app: Any) -> None:
    landing = app.get("/")
    offer = " ".join(landing.html.select_one(".buys").text.split())
    assert "300 units a month: about 300 images with Demo or 100 images with Demo Pro" in offer
    # The pricing page speaks units: each plan's units a period, and what a batch costs.
    plan = app.get("/pricing").html.select_one("#plan-monthly")
    assert "300 units a month" in " ".join(plan.text.split())
    assert "a batch of 4 images costs 4 times one image" in app.get("/pricing").text
    for path in ("/", "/pricing"):
        page = app.get(path)
        pictures = [img["src"] for img in page.html.select(".examples img")]
        assert len(pictures) == 3, path
        for src in pictures:
            assert src.startswith("/static/examples/")
            assert app.get(src).content_type == "image/webp"


def test_a_used_up_quota_says_so_and_links_to_renewal(
    app: Any, api: Any, db: Any, make_cycle: Any
) -> None:
    from nproxy_core.accounts.models import User

    api.register("busy@example.com")
    user = db.query(User).filter_by(email="busy@example.com").one()
    make_cycle(user, request_limit=5, used=5)
    page = api.get("/dashboard")
    used_up = page.html.select_one("#quota-used-up")
    assert used_up is not None and "used up" in used_up.text
    assert used_up.select_one('a[href="/pricing"]') is not None
    assert "days left" in page.text


def test_a_server_side_field_error_marks_the_field_and_points_to_the_message(app: Any) -> None:
    page = app.get("/register")
    form = page.forms[0]
    form["email"] = "not-an-email"
    form["password"] = "correct horse battery"
    answer = form.submit(status="*")
    field = answer.html.select_one("#email")
    assert field.get("aria-invalid") == "true"
    assert field.get("aria-describedby") == "form-error"
    assert answer.html.select_one("#form-error[role=alert]") is not None
