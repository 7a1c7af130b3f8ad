"""Templates in a real browser (DESIGN 4.17, issue 26): the admin makes a template's example
through the model ("Make example"); a customer finds it in the chat's gallery (in the empty
thread and behind the Templates button), fills the fursona's fields (a photo on the ordinary
upload path, a species, colours) and gets a portrait with the model's words under it. At
1280 and 390 px: no sideways scroll, no serious axe finding. Screenshots land in
``test-artifacts/browser/templates-*.png``.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from browser_support import (
    CHROMIUM,
    GENERATION_TIMEOUT_MS,
    check_here,
    log_in,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 320), (196, 120, 84)).save(buffer, "PNG")
    return buffer.getvalue()


def look(page: Any, name: str, problems: list[str]) -> None:
    check_here(page, name, problems, prefix="templates")


def test_a_fursona_from_a_photo_with_its_description_at_both_widths(
    live_stack: Any, browser: Any, user_factory: Any, make_cycle: Any
) -> None:
    from playwright.sync_api import expect

    base = live_stack.url
    problems: list[str] = []
    admin = user_factory("boss@example.com", admin=True)
    make_cycle(admin)
    customer = user_factory("fox@example.com")
    make_cycle(customer)

    # The admin makes the example through the model: it then illustrates the gallery.
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    log_in(page, base, admin.email)
    page.goto(f"{base}/admin/templates/fursona")
    expect(page.locator("#template-example")).to_contain_text("No example yet")
    page.set_input_files(
        "#ex-photo", files=[{"name": "me.png", "mimeType": "image/png", "buffer": photo()}]
    )
    page.select_option("#ex-species", "Fox")
    page.fill("#ex-colours", "orange and cream")
    page.click("#example-form button[type=submit]")
    expect(page.locator("#example-pending")).to_be_visible()
    # The page refreshes itself until the model's image is the example.
    expect(page.locator("#template-example img.example")).to_be_visible(
        timeout=GENERATION_TIMEOUT_MS
    )
    look(page, "admin-template-desktop", problems)
    page.goto(f"{base}/admin/templates")
    look(page, "admin-list-desktop", problems)
    page.set_viewport_size(PHONE)
    look(page, "admin-list-phone", problems)
    context.close()

    for size, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        context = browser.new_context(viewport=size)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        log_in(page, base, customer.email)
        page.goto(f"{base}/chat")
        fursona = page.locator('#template-gallery [data-template="fursona"]')
        expect(fursona).to_contain_text("Fursona from your photo")
        expect(fursona.locator("img")).to_be_visible()
        expect(page.locator("#template-gallery .template-card")).to_have_count(5)
        look(page, f"chat-empty-{label}", problems)

        # Behind the Templates button too, as a dialog.
        page.click("#templates-button")
        dialog = page.locator("#templates-dialog")
        expect(dialog).to_be_visible()
        look(page, f"dialog-{label}", problems)
        dialog.locator('[data-template="fursona"]').click()
        expect(dialog).to_be_hidden()

        form = page.locator("#template-form")
        expect(form).to_be_visible()
        expect(page.locator("#prompt")).to_be_hidden()
        # The fields say what is missing, each by its name, before anything is sent.
        page.click("#send")
        expect(page.locator("#tf-photo-error")).to_have_text(
            "Your photo is required: choose a photo."
        )
        expect(page.locator("#tf-species-error")).to_have_text("Species is required.")
        expect(page.locator(".turn")).to_have_count(0)

        page.set_input_files(
            "#tf-photo", files=[{"name": "me.png", "mimeType": "image/png", "buffer": photo()}]
        )
        page.select_option("#tf-species", "Fox")
        page.fill("#tf-colours", "orange and cream")
        expect(page.locator('.image-slot[data-state="ready"]')).to_be_visible()
        expect(page.locator("#cost-line")).to_contain_text("1 image")
        look(page, f"form-{label}", problems)
        page.click("#send")

        turn = page.locator(".turn").last
        expect(turn).to_have_attribute("data-state", "succeeded", timeout=GENERATION_TIMEOUT_MS)
        expect(turn.locator(".prompt-text")).to_have_text(
            "Fursona from your photo · Fox · orange and cream"
        )
        expect(turn.locator(".tile img")).to_have_count(1)
        # The model's words, kept with the generation, under the image.
        expect(turn.locator(".model-text")).to_contain_text("Meet ")
        look(page, f"result-{label}", problems)

        # Still there after a reload: the words come from the conversation.
        page.reload()
        expect(page.locator(".turn .model-text").last).to_contain_text("Meet ")
        assert errors == [], errors
        context.close()

    assert problems == [], "\n".join(problems)
