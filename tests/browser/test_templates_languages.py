"""A template in Russian, in a real browser (DESIGN 4.15, 4.17): the gallery card, the form's
title, labels and a select's options are the admin's Russian words, while what is sent is the
English option the prompt is built from; the generation runs and the thread says it in Russian.
Screenshots land in ``test-artifacts/browser/templates-ru-*.png``."""

from __future__ import annotations

import io
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from browser_support import CHROMIUM, GENERATION_TIMEOUT_MS, check_here, log_in
from nproxy_core.prompt_templates.models import TemplateRun

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 320), (196, 120, 84)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_russian_reader_fills_the_fursona_in_russian_and_the_english_value_is_sent(
    live_stack: Any, browser: Any, user_factory: Any, make_cycle: Any, db: Any
) -> None:
    from playwright.sync_api import expect

    base = live_stack.url
    problems: list[str] = []
    customer = user_factory("lisa@example.com")
    make_cycle(customer)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.add_cookies([{"name": "lang", "value": "ru", "url": base}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, base, customer.email)
    page.goto(f"{base}/chat")
    fursona = page.locator('#template-gallery [data-template="fursona"]')
    expect(fursona).to_contain_text("Фурсона по вашему фото")
    fursona.click()

    expect(page.locator("#template-form")).to_be_visible()
    expect(page.locator("#template-form-title")).to_have_text("Фурсона по вашему фото")
    expect(page.locator('label[for="tf-species"]')).to_contain_text("Животное")
    fox = page.locator('#tf-species option[value="Fox"]')
    expect(fox).to_have_text("Лиса")
    page.set_input_files(
        "#tf-photo", files=[{"name": "me.png", "mimeType": "image/png", "buffer": photo()}]
    )
    page.select_option("#tf-species", "Fox")
    page.fill("#tf-colours", "рыжий и кремовый")
    expect(page.locator('.image-slot[data-state="ready"]')).to_be_visible()
    check_here(page, "ru-form-phone", problems, prefix="templates")
    page.click("#send")

    turn = page.locator(".turn").last
    # The thread names the choice as the reader saw it; the server took the English value.
    expect(turn.locator(".prompt-text")).to_have_text(
        "Фурсона по вашему фото · Лиса · рыжий и кремовый"
    )
    expect(turn).to_have_attribute("data-state", "succeeded", timeout=GENERATION_TIMEOUT_MS)
    check_here(page, "ru-result-phone", problems, prefix="templates")
    db.expire_all()
    [inputs] = db.scalars(sa.select(TemplateRun.inputs)).all()
    assert inputs["species"] == "Fox"
    assert errors == [], errors
    context.close()
    assert problems == [], "\n".join(problems)
