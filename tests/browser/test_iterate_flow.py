"""Iterating on results and finding them again, in a real browser: make an image, refine it
by using the result as input, regenerate, browse the conversation in the lightbox, find the
image in the library, rename and delete the conversation. Then every page, at desktop and
phone width: no sideways scrolling and no serious accessibility problem (axe-core).

Screenshots land in ``test-artifacts/browser/`` (``iterate-*``, ``page-*``).
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from PIL import Image

from browser_support import CHROMIUM, axe_problems, shot, sideways_scroll, wait_for_images

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]

EMAIL = "a-rather-long-name.for-an-email-address@example-subdomain.example.com"
PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


def register_and_pay(page: Any, base: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/register")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/pricing")

    # Without a plan the composer is a "choose a plan" card; what is typed stays, and a
    # refused send makes no conversation.
    page.goto(f"{base}/chat")
    expect(page.locator("#no-plan")).to_be_visible()
    expect(page.locator("#send")).to_be_hidden()
    page.fill("#prompt", "a paper boat on a puddle")
    page.press("#prompt", "Enter")
    expect(page.locator(".turn")).to_have_count(0)
    shot(page, "iterate-01-no-plan")
    listed = page.evaluate("fetch('/api/v1/conversations').then(r => r.json())")
    assert listed["conversations"] == []
    page.reload()
    expect(page.locator("#prompt")).to_have_value("a paper boat on a puddle")

    page.click("header nav >> text=Pricing")
    page.select_option("#processor", "demo")
    page.click("#checkout button[type=submit]")
    page.wait_for_url(re.compile(r"/billing/demo/checkout/"))
    page.click("button[value=paid]")
    expect(page.locator("#payment")).to_have_attribute("data-status", "finished")
    # After paying, the success page leads straight into the chat, where the prompt waits.
    page.click("#start-creating")
    page.wait_for_url(f"{base}/chat")
    expect(page.locator("#no-plan")).to_be_hidden()
    expect(page.locator("#prompt")).to_have_value("a paper boat on a puddle")


def test_refine_regenerate_library_rename_delete(live_stack: Any, page: Any) -> None:
    from playwright.sync_api import expect

    base = live_stack.url
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    register_and_pay(page, base)

    # A new conversation starts in text -> image; two images.
    chat = page.locator("#chat")
    expect(chat).to_have_attribute("data-subscription", "active")
    expect(page.locator("#mode-t2i")).to_be_checked()
    page.fill("#prompt", "a red kite over green hills, gouache")
    page.select_option("#batch-size", "2")
    page.press("#prompt", "Enter")
    first = page.locator(".turn").nth(0)
    expect(first.locator(".turn-status")).to_contain_text(re.compile(r"\d+ s"))
    wait_for_images(page, first, 2)
    page.wait_for_url(re.compile(r"/chat/[^/]+$"))
    conversation_id = page.url.rsplit("/", 1)[1]
    # The images of a turn are one Tab stop.
    assert first.locator(".tile-open[tabindex='0']").count() == 1
    shot(page, "iterate-02-first")

    # Use the first result as input: the composer switches to image -> image with it.
    first.locator(".tile").first.hover()
    first.locator(".tile-action", has_text="Use").first.click()
    expect(page.locator("#mode-i2i")).to_be_checked()
    expect(page.locator(".input-thumb[data-state=ready]")).to_have_count(1)
    page.select_option("#batch-size", "1")
    page.fill("#prompt", "the same kite, in a snowstorm")
    shot(page, "iterate-03-use-as-input")
    page.press("#prompt", "Enter")
    second = page.locator(".turn").nth(1)
    expect(second.locator(".turn-inputs img")).to_have_count(1)
    wait_for_images(page, second, 1)

    # And refine the refinement, this time from the lightbox.
    second.locator(".tile-open").first.click()
    expect(page.locator("#lightbox")).to_be_visible()
    expect(page.locator("#lightbox-prompt")).to_have_text("the same kite, in a snowstorm")
    expect(page.locator("#lightbox-meta")).to_contain_text("Image → image")
    # Left and right browse the whole conversation.
    expect(page.locator("#lightbox-position")).to_have_text("3 of 3")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#lightbox-position")).to_have_text("2 of 3")
    expect(page.locator("#lightbox-prompt")).to_have_text("a red kite over green hills, gouache")
    page.keyboard.press("ArrowRight")
    shot(page, "iterate-04-lightbox")
    page.click("#lightbox-use")
    expect(page.locator("#lightbox")).to_be_hidden()
    expect(page.locator(".input-thumb[data-state=ready]")).to_have_count(1)
    page.fill("#prompt", "the kite at night, with stars")
    page.press("#prompt", "Enter")
    third = page.locator(".turn").nth(2)
    wait_for_images(page, third, 1)

    # Regenerate the first turn: a new turn with the same prompt and controls.
    first.get_by_role("button", name="Regenerate").click()
    fourth = page.locator(".turn").nth(3)
    expect(fourth.locator(".prompt-text")).to_have_text("a red kite over green hills, gouache")
    wait_for_images(page, fourth, 2)
    shot(page, "iterate-05-regenerated")

    # A draft survives a reload, per conversation.
    page.fill("#prompt", "a draft I have not sent")
    page.wait_for_timeout(400)
    page.reload()
    expect(page.locator("#prompt")).to_have_value("a draft I have not sent")
    page.click("#new-chat")
    expect(page.locator("#prompt")).to_have_value("")
    expect(page.locator("#mode-t2i")).to_be_checked()
    page.go_back()
    expect(page.locator("#prompt")).to_have_value("a draft I have not sent")

    # An upload the server refuses shows its whole message in a clean tile.
    page.click("label[for=mode-i2i]")
    page.set_input_files(
        "#file-input",
        files=[{"name": "fake.png", "mimeType": "image/png", "buffer": b"not a picture at all"}],
    )
    refused = page.locator(".input-thumb[data-state=error]")
    expect(refused).to_contain_text("not a PNG, JPEG or WebP image")
    expect(refused.locator("img")).to_have_count(0)
    shot(page, "iterate-06-refused-upload")
    refused.locator(".thumb-remove").click()

    # The library: every image, newest first; the lightbox leads back to the conversation.
    page.click("header nav >> text=Library")
    page.wait_for_url(f"{base}/library")
    expect(page.locator(".library-tile")).to_have_count(6)
    page.locator(".library-tile .tile-open").first.click()
    expect(page.locator("#lightbox-open")).to_have_attribute("href", f"/chat/{conversation_id}")
    expect(page.locator("#lightbox-prompt")).to_have_text("a red kite over green hills, gouache")
    shot(page, "iterate-07-library-lightbox")
    # "Use as input" there starts a new chat with the image in the composer.
    page.click("#lightbox-use")
    page.wait_for_url(f"{base}/chat")
    expect(page.locator("#mode-i2i")).to_be_checked()
    expect(page.locator(".input-thumb[data-state=ready]")).to_have_count(1)
    page.click(".thumb-remove")
    page.goto(f"{base}/library")
    page.locator(".library-tile .tile-open").first.click()
    page.click("#lightbox-open")
    page.wait_for_url(f"{base}/chat/{conversation_id}")
    expect(page.locator(".turn")).to_have_count(4)

    # Rename from the sidebar.
    row = page.locator(f"#conversation-list li[data-id='{conversation_id}']")
    row.get_by_role("button", name=re.compile("Rename")).click()
    page.fill(".rename-input", "Kites")
    page.press(".rename-input", "Enter")
    expect(row.locator("a")).to_have_text("Kites")
    expect(page.locator("#thread-title")).to_have_text("Kites")

    # Delete, after a confirmation; its images are gone from storage.
    image_url = page.locator(".turn .tile img").first.get_attribute("src")
    row.get_by_role("button", name=re.compile("Delete")).click()
    expect(page.locator("#confirm-delete")).to_be_visible()
    shot(page, "iterate-08-confirm-delete")
    page.click("#confirm-delete button[value=delete]")
    expect(page.locator(f"#conversation-list li[data-id='{conversation_id}']")).to_have_count(0)
    page.wait_for_url(f"{base}/chat")
    status = page.evaluate("url => fetch(url, {cache: 'no-store'}).then(r => r.status)", image_url)
    assert status == 404
    page.goto(f"{base}/library")
    expect(page.locator("#library-empty")).to_be_visible()

    # Honest quota: 6 of the plan's 10 are used. After 3 more, only batches of 1 fit, and
    # the picker says so; after the last one the chat says the period is used up.
    page.goto(f"{base}/chat")
    page.fill("#prompt", "three small boats")
    page.select_option("#batch-size", "3")
    page.press("#prompt", "Enter")
    wait_for_images(page, page.locator(".turn").nth(0), 3)
    expect(page.locator("#batch-size option[value='2']")).to_be_disabled()
    expect(page.locator("#batch-size option[value='2']")).to_contain_text("not enough left")
    expect(page.locator("#batch-size")).to_have_value("1")
    expect(page.locator("#batch-size option[value='1']")).to_be_enabled()
    shot(page, "iterate-09-batch-limited")
    page.fill("#prompt", "one last boat")
    page.press("#prompt", "Enter")
    wait_for_images(page, page.locator(".turn").nth(1), 1)
    expect(page.locator("#quota-used-up")).to_be_visible()
    expect(page.locator("#quota-used-up a")).to_have_attribute("href", "/pricing")
    expect(page.locator("#quota-text")).to_have_text("Used up")
    shot(page, "iterate-10-used-up")

    assert errors == [], f"JavaScript errors on the page: {errors}"


def visit(page: Any, url: str, name: str, problems: list[str], prepare: Any = None) -> None:
    """One page in both themes (prefers-color-scheme) and both widths: no sideways scroll, no
    serious accessibility violation (added to ``problems``), a screenshot each."""
    for size, label, scheme in (
        (DESKTOP, "desktop", "light"),
        (PHONE, "phone", "light"),
        (DESKTOP, "desktop-dark", "dark"),
    ):
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size(size)
        page.goto(url)
        page.wait_for_load_state("networkidle")
        if prepare is not None:
            prepare(label)
        overflow = sideways_scroll(page)
        if overflow > 0:
            problems.append(f"{url} scrolls sideways by {overflow}px at {label} width")
        shot(page, f"page-{name}-{label}")
        problems.extend(axe_problems(page))


def test_every_public_page_fits_a_phone_and_passes_axe(live_stack: Any, page: Any) -> None:
    from playwright.sync_api import expect

    base = live_stack.url
    problems: list[str] = []
    for path, name in (
        ("/", "landing"),
        ("/pricing", "pricing"),
        ("/login", "login"),
        ("/register", "register"),
        ("/forgot-password", "forgot"),
        ("/reset-password?token=not-a-token", "reset"),
    ):
        visit(page, f"{base}{path}", name, problems)

    # The API reference (the vendored Swagger UI under the site's strict CSP): rendered, with
    # every operation open, and nothing refused by the policy.
    refused: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error":
            refused.append(message.text)

    page.on("console", console)

    def open_every_operation(label: str) -> None:
        operations = page.locator(".opblock-summary")
        expect(operations.first).to_be_visible()
        # Open, on the narrowest screen (Swagger UI's panel is light in both themes): the widest
        # tables, and every control axe should see. Once: axe over all of it takes a while.
        if label == "phone":
            # In one go inside the page: a click through Playwright for each of some fifty
            # operations (scrolled to, waited stable) took a minute on a loaded machine.
            count = page.evaluate(
                "() => { const all = [...document.querySelectorAll('.opblock-summary')];"
                " all.forEach(el => (el.querySelector('.opblock-summary-control') || el).click());"
                " return all.length; }"
            )
            expect(page.locator(".opblock.is-open")).to_have_count(count)

    visit(page, f"{base}/docs/api", "api-docs", problems, open_every_operation)
    page.remove_listener("console", console)
    assert refused == [], refused
    assert problems == [], "\n".join(problems)


def test_every_customer_page_fits_a_phone_and_passes_axe(live_stack: Any, page: Any) -> None:
    from playwright.sync_api import expect

    base = live_stack.url
    problems: list[str] = []
    register_and_pay(page, base)
    page.fill("#prompt", "a small green frog on a leaf")
    page.press("#prompt", "Enter")
    wait_for_images(page, page.locator(".turn").nth(0), 1)
    conversation = page.url.rsplit("/", 1)[1]
    payments = page.evaluate("fetch('/api/v1/billing/payments').then(r => r.json())")
    order = payments["payments"][0]["id"]
    for path, name in (
        ("/dashboard", "dashboard"),
        ("/billing", "billing"),
        (f"/billing/payments/{order}/success", "paid"),
        ("/chat", "chat-new"),
        (f"/chat/{conversation}", "chat"),
        ("/library", "library"),
        ("/account/api-keys", "api-keys"),
        ("/account/password", "password"),
        (f"/billing/payments/{order}/cancel", "cancelled"),
        (f"/billing/demo/checkout/{order}", "demo-checkout-paid"),
        ("/pricing", "pricing-customer"),
        ("/", "landing-customer"),
    ):
        visit(page, f"{base}{path}", name, problems)

    # The lightbox and the phone's drawer are pages of their own to a person.
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size(PHONE)
    page.goto(f"{base}/chat/{conversation}")
    wait_for_images(page, page.locator(".turn").nth(0), 1)
    page.click("#sidebar-toggle")
    page.wait_for_timeout(300)
    shot(page, "page-chat-drawer-phone")
    problems.extend(axe_problems(page))
    page.keyboard.press("Escape")
    page.locator(".tile-open").first.click()
    expect(page.locator("#lightbox")).to_be_visible()
    shot(page, "page-chat-lightbox-phone")
    problems.extend(axe_problems(page))

    assert problems == [], "\n".join(problems)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()
