"""A person's whole first visit, in a real browser: register, pay with the demo processor,
generate text-to-image, then image-to-image from an uploaded file, and see the images; then
the provider goes down, and the chat says so in the server's words.

Screenshots of every step land in ``test-artifacts/browser/``; look at them after a change to
the chat UI.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from PIL import Image, ImageDraw

from browser_support import CHROMIUM, GENERATION_TIMEOUT_MS, shot, wait_for_images
from nproxy_core.keypool.errors import FAILURE_MESSAGES

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]

EMAIL = "painter@example.com"
PASSWORD = "correct horse battery"
#: Generous for the first generation (worker warm-up), the demo provider takes one second.


def input_png() -> bytes:
    """A small picture with something recognisable on it, made here rather than stored."""
    image = Image.new("RGB", (320, 240), (30, 120, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((90, 50, 230, 190), fill=(250, 210, 40))
    draw.rectangle((0, 200, 320, 240), fill=(40, 160, 80))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def drop_file(page: Any, selector: str, name: str, data: bytes) -> None:
    """Drop a file onto an element the way a person's drag and drop does (DataTransfer)."""
    page.evaluate(
        """([selector, name, bytes]) => {
            const target = document.querySelector(selector);
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "image/png"}));
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, {
                    dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""",
        [selector, name, list(data)],
    )


def watch_for_broken_assets(page: Any) -> list[str]:
    """Console errors and broken static files, collected while the page runs.

    A person sees only a dead page when a module is missing or served as anything but
    JavaScript (text/plain does not run); the console and the answers say which. Two console
    errors are not the page's fault. Chromium logs every 4xx answer as "Failed to
    load resource", and the chat answers an API's refusal in place (the 402 below); and it asks
    for a /favicon.ico the site does not have.
    """
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        refused = re.search(r"status of 4\d\d", message.text) and "/api/" in where
        if refused or where.endswith("/favicon.ico"):
            return
        problems.append(f"console: {message.text} ({where})")

    def on_response(response: Any) -> None:
        if "/static/" not in response.url:
            return
        content_type = response.headers.get("content-type", "")
        if response.status >= 400:
            problems.append(f"{response.url}: HTTP {response.status}")
        elif response.url.endswith(".js") and "javascript" not in content_type:
            problems.append(f"{response.url}: served as {content_type!r}")

    page.on("console", on_console)
    page.on("response", on_response)
    return problems


def images_loaded(page: Any, turn: Any) -> int:
    """How many of a turn's result images the browser actually decoded."""
    return turn.locator(".tile img").evaluate_all(
        "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length"
    )


def test_register_pay_and_generate_both_modes(live_stack: Any, page: Any) -> None:
    from playwright.sync_api import expect

    base = live_stack.url
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    broken = watch_for_broken_assets(page)

    # Register.
    page.goto(f"{base}/register")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/pricing")
    shot(page, "01-registered")

    # Before paying, the chat explains in place why nothing is generated, with the way out:
    # the composer's controls give way to a "choose a plan" card, and a send sends nothing.
    page.goto(f"{base}/chat")
    assert errors + broken == [], f"the chat did not load cleanly: {errors + broken}"
    expect(page.locator("#quota-note")).to_contain_text("No active plan")
    expect(page.locator("#no-plan")).to_be_visible()
    expect(page.locator("#no-plan a")).to_have_attribute("href", "/pricing")
    page.fill("#prompt", "a cat in a hat")
    page.press("#prompt", "Enter")
    expect(page.locator(".turn")).to_have_count(0)
    expect(page.locator("#prompt")).to_have_value("a cat in a hat")
    shot(page, "01b-no-plan")

    # Buy a cycle with the demo processor: pricing -> checkout -> demo page -> paid.
    page.goto(f"{base}/pricing")
    page.select_option("#processor", "demo")
    page.click("#checkout button[type=submit]")
    page.wait_for_url(re.compile(r"/billing/demo/checkout/"))
    shot(page, "02-demo-checkout")
    page.click("button[value=paid]")
    expect(page.locator("#payment")).to_have_attribute("data-status", "finished")
    page.goto(f"{base}/dashboard")
    expect(page.locator("#subscription")).to_have_attribute("data-status", "active")
    shot(page, "03-dashboard-active")

    # Open the chat from the navigation, and start a new conversation.
    page.click("header nav >> text=Chat")
    page.wait_for_url(f"{base}/chat")
    page.click("#new-chat")
    chat = page.locator("#chat")
    expect(chat).to_have_attribute("data-quota-bucket", "100")
    expect(page.locator("#resolution option").first).to_be_attached()
    expect(page.locator("#quota-text")).to_have_text("About 100% left")
    shot(page, "04-chat-empty")

    # Text to image, two images; Enter sends.
    page.fill("#prompt", "a lighthouse on a cliff at dusk, oil painting")
    page.select_option("#batch-size", "2")
    page.press("#prompt", "Enter")
    first = page.locator(".turn").nth(0)
    expect(first).to_have_attribute("data-state", "pending")
    expect(first.locator(".tile.placeholder")).to_have_count(2)
    expect(first.locator(".turn-status")).to_contain_text(re.compile(r"(Waiting|Generating)"))
    shot(page, "05-text-to-image-progress")
    wait_for_images(page, first, 2)
    page.wait_for_url(re.compile(r"/chat/[^/]+$"))
    conversation_url = page.url
    shot(page, "06-text-to-image-done")

    # The quota meter refreshed after the generation: 2 of 10 used shows as "about 80%".
    expect(chat).to_have_attribute("data-quota-bucket", "80")
    expect(page.locator("#quota-text")).to_have_text("About 80% left")

    # Enlarge one image in the lightbox, with a download link.
    first.locator(".tile-open").first.click()
    lightbox = page.locator("#lightbox")
    expect(lightbox).to_be_visible()
    expect(page.locator("#lightbox-download")).to_have_attribute("href", re.compile(r"/media/"))
    shot(page, "07-lightbox")
    page.keyboard.press("Escape")
    expect(lightbox).to_be_hidden()

    # Image to image from an uploaded file: pick it, see it upload, send.
    page.click("label[for=mode-i2i]")
    expect(page.locator("#strength-control")).to_be_visible()
    page.set_input_files(
        "#file-input", files=[{"name": "sun.png", "mimeType": "image/png", "buffer": input_png()}]
    )
    expect(page.locator(".input-thumb")).to_have_attribute("data-state", "ready", timeout=10_000)
    # A second image dropped onto the composer uploads too, and can be removed again.
    drop_file(page, "#composer", "dropped.png", input_png())
    expect(page.locator(".input-thumb[data-state=ready]")).to_have_count(2, timeout=10_000)
    page.click("button[aria-label='Remove dropped.png']")
    expect(page.locator(".input-thumb")).to_have_count(1)
    page.fill("#prompt", "the same scene as a watercolour")
    page.select_option("#batch-size", "1")
    shot(page, "08-image-to-image-composer")
    page.click("#send")
    second = page.locator(".turn").nth(1)
    expect(second.locator(".turn-inputs img")).to_have_count(1)
    expect(second).to_have_attribute("data-generation-id", re.compile(".+"))
    # Leave while the job runs and come back: the history shows the message, and polling
    # resumes until the image is there.
    page.reload()
    second = page.locator(".turn").nth(1)
    expect(second.locator(".turn-inputs img")).to_have_count(1)
    wait_for_images(page, second, 1)
    shot(page, "09-image-to-image-done")
    assert images_loaded(page, second) == 1

    # Resuming: opening the conversation's address shows its history with the images.
    page.goto(conversation_url)
    expect(page.locator(".turn")).to_have_count(2)
    wait_for_images(page, page.locator(".turn").nth(0), 2)
    wait_for_images(page, page.locator(".turn").nth(1), 1)
    expect(page.locator("#conversation-list a[aria-current=page]")).to_have_count(1)
    shot(page, "10-resumed")

    # Phone width: no horizontal scroll, sidebar behind a toggle.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at phone width"
    expect(page.locator("#chat-sidebar")).not_to_be_in_viewport()
    shot(page, "11-phone")
    # Closed, the drawer's controls are out of the keyboard's way; opened, it takes the focus.
    new_chat = page.locator("#new-chat")
    assert not new_chat.evaluate(
        "node => { node.focus(); return document.activeElement === node; }"
    )
    page.click("#sidebar-toggle")
    expect(page.locator("#chat-sidebar")).to_be_in_viewport()
    expect(new_chat).to_be_focused()
    page.wait_for_timeout(300)  # the drawer slides in
    shot(page, "12-phone-sidebar")

    # The provider goes down (its only key is taken out of service): a new request fails, and
    # the chat shows the server's message for it, not words of its own.
    page.keyboard.press("Escape")  # close the drawer
    page.set_viewport_size({"width": 1280, "height": 860})
    page.click("#new-chat")
    listed = live_stack.nproxy("keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr or listed.stdout
    for key in json.loads(listed.stdout):
        disabled = live_stack.nproxy("keys", "disable", str(key["id"]))
        assert disabled.returncode == 0, disabled.stderr or disabled.stdout
    page.click("label[for=mode-t2i]")
    page.fill("#prompt", "a storm over the sea")
    page.select_option("#batch-size", "1")
    page.press("#prompt", "Enter")
    failed = page.locator(".turn").nth(0)
    expect(failed).to_have_attribute("data-state", "failed", timeout=GENERATION_TIMEOUT_MS)
    expect(failed.locator(".turn-error")).to_have_text(FAILURE_MESSAGES["provider_unavailable"])
    shot(page, "13-provider-down")

    assert errors == [], f"JavaScript errors on the page: {errors}"
    assert broken == [], f"console errors or broken static files: {broken}"
