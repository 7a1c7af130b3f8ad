"""What the walk of issue 26 found, fixed, in a real browser at 1280 and 390 px, axe clean:

1. the session ending mid-chat gives the prompt back (as the draft) with a log-in link that
   returns to the conversation; 2. with the units used up Generate becomes Renew, the prompt
   stays and "Renew your plan" is never said twice; 3. a model that answers in words only says
   so, offers a retry and charges nothing; 4. uploads are checked in the browser ("Too large:
   11 MB, at most 10 MB") and any 413, even a proxy's HTML page, reads the same; 5. sign-up
   without a plan goes to pricing; 6. on a phone the pricing page's Buy button is on the first
   screen; 7. the API keys table's actions column has a header; 8. the empty chat offers
   example prompts, and the landing page's examples open the chat with the prompt filled in.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from browser_support import (
    CHROMIUM,
    GENERATION_TIMEOUT_MS,
    LiveStack,
    check_here,
    demo_stack,
    log_in,
    shot,
    sign_up,
    submit_credentials,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
MB = 1024 * 1024


def png(size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (90, 140, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def check(page: Any, name: str, problems: list[str]) -> None:
    check_here(page, name, problems, prefix="fixes")


def resize(page: Any, size: dict[str, int]) -> None:
    """The window at ``size``, once what that sets moving (the sidebar leaving for its drawer
    at phone width) has come to rest, so the screenshot and axe see the page a person would."""
    page.set_viewport_size(size)
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")


def renews_said(page: Any) -> int:
    """How often the visible page says "renew your plan"."""
    text = page.evaluate("document.body.innerText").lower()
    return text.count("renew your plan")


def open_chat_holding(
    live_stack: Any, page: Any, user_factory: Any, make_cycle: Any, call: str
) -> list[Any]:
    """A paying customer's chat opened with its start-up call ``/api/v1/{call}`` held: the
    list that the held request lands in, for the test to let go of."""
    user = user_factory()
    make_cycle(user, request_limit=3)
    log_in(page, live_stack.url, user.email)
    held: list[Any] = []
    page.route(f"**/api/v1/{call}", lambda route: held.append(route))
    page.goto(f"{live_stack.url}/chat")
    return held


def test_a_send_made_while_the_page_still_loads_keeps_its_turn(
    live_stack: Any, page: Any, user_factory: Any, make_cycle: Any
) -> None:
    """The start-up calls ending after the first send must not reopen the new conversation
    (which cleared the turn just sent and stopped watching it)."""
    from playwright.sync_api import expect

    held = open_chat_holding(live_stack, page, user_factory, make_cycle, "templates")
    expect(page.locator("#model option")).not_to_have_count(0)
    page.fill("#prompt", "a kite before the page is ready")
    page.press("#prompt", "Enter")
    turn = page.locator(".turn")
    expect(turn).to_have_attribute("data-state", "succeeded", timeout=GENERATION_TIMEOUT_MS)
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}$"))
    turn.evaluate("node => { node.dataset.sentHere = 'yes'; }")
    assert len(held) == 1
    held[0].continue_()
    # The gallery is filled (in the hidden empty thread) once the held call answers.
    expect(page.locator("#template-gallery .template-card")).not_to_have_count(0)
    # The same turn, still shown; the empty thread's examples stay hidden.
    expect(page.locator(".turn[data-sent-here=yes]")).to_have_count(1)
    expect(page.locator("#empty-thread")).to_be_hidden()


def test_a_send_made_before_the_models_are_known_waits_for_them(
    live_stack: Any, page: Any, user_factory: Any, make_cycle: Any
) -> None:
    """Enter pressed while the page still asks for the models sends once they arrive (it did
    nothing, and said nothing, before)."""
    from playwright.sync_api import expect

    held = open_chat_holding(live_stack, page, user_factory, make_cycle, "models")
    expect(page.locator("#quota-text")).not_to_have_text("…")
    page.fill("#prompt", "a kite sent before the models are known")
    page.press("#prompt", "Enter")
    assert len(held) == 1
    held[0].continue_()
    turn = page.locator(".turn")
    expect(turn).to_have_attribute("data-state", "succeeded", timeout=GENERATION_TIMEOUT_MS)
    expect(page.locator("#prompt")).to_have_value("")


def test_a_send_made_while_a_conversation_still_loads_comes_after_its_turns(
    live_stack: Any, page: Any, user_factory: Any, make_cycle: Any
) -> None:
    """The conversation's own turns, arriving after a send made as it opened, go before that
    send's turn, not after it."""
    from playwright.sync_api import expect

    from waiting import wait_until

    base = live_stack.url
    user = user_factory()
    make_cycle(user, request_limit=3)
    log_in(page, base, user.email)
    page.goto(f"{base}/chat")
    page.fill("#prompt", "the first idea")
    page.press("#prompt", "Enter")
    expect(page.locator(".turn")).to_have_attribute(
        "data-state", "succeeded", timeout=GENERATION_TIMEOUT_MS
    )
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}$"))

    held: dict[str, Any] = {}
    page.route(
        "**/api/v1/conversations/*",
        lambda route: (
            hold(held, "thread", route) if route.request.method == "GET" else route.continue_()
        ),
    )
    page.reload()
    wait_until(lambda: page.evaluate("0") or held, timeout=20, what="the conversation's read")
    page.fill("#prompt", "the second idea")
    page.press("#prompt", "Enter")
    expect(page.locator(".turn")).to_have_count(1)
    held["thread"].continue_()
    page.unroute("**/api/v1/conversations/*")
    turns = page.locator(".turn .prompt-text")
    expect(turns).to_have_count(2)
    expect(turns).to_have_text(["the first idea", "the second idea"])
    expect(page.locator(".turn").last).to_have_attribute(
        "data-state", "succeeded", timeout=GENERATION_TIMEOUT_MS
    )
    expect(turns).to_have_text(["the first idea", "the second idea"])


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_send_that_does_not_go_through_keeps_what_was_typed(
    live_stack: Any, page: Any, db: Any, user_factory: Any, make_cycle: Any, size: Any
) -> None:
    from playwright.sync_api import expect

    from nproxy_core.billing.models import BillingCycle

    base = live_stack.url
    page.set_viewport_size(size)
    label = "phone" if size is PHONE else "desktop"
    problems: list[str] = []
    user = user_factory()
    cycle = make_cycle(user, request_limit=3)
    log_in(page, base, user.email)
    page.goto(f"{base}/chat")

    # 8. Example prompts in the empty chat fill the composer.
    examples = page.locator("#example-prompts .example-prompt")
    assert 3 <= examples.count() <= 4
    first = examples.first.text_content()
    examples.first.click()
    expect(page.locator("#prompt")).to_have_value(first)
    expect(page.locator("#prompt")).to_be_focused()
    check(page, f"examples-{label}", problems)

    page.fill("#prompt", "a lighthouse at dusk")
    page.press("#prompt", "Enter")
    turn = page.locator(".turn").first
    expect(turn).to_have_attribute("data-state", "succeeded", timeout=GENERATION_TIMEOUT_MS)
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}$"))
    conversation = page.url.removeprefix(base)

    # 1. The session ends (cookies gone): the prompt comes back, and logging in returns here.
    page.context.clear_cookies()
    page.fill("#prompt", "a second idea, not to be lost")
    page.press("#prompt", "Enter")
    banner = page.locator("#banner")
    expect(banner).to_contain_text("Your session has ended")
    expect(page.locator("#prompt")).to_have_value("a second idea, not to be lost")
    expect(page.locator(".turn")).to_have_count(1)
    link = banner.locator("a")
    expect(link).to_have_attribute(
        "href", re.compile(re.escape("next=" + conversation.replace("/", "%2F")))
    )
    check(page, f"session-ended-{label}", problems)
    link.click()
    submit_credentials(page, user.email)
    page.wait_for_url(f"{base}{conversation}")
    expect(page.locator("#prompt")).to_have_value("a second idea, not to be lost")

    # 2. The units run out under the page: nothing is kept of the send, the prompt stays,
    # Generate gives way to Renew, and the refusal is said once.
    db.execute(sa.update(BillingCycle).where(BillingCycle.id == cycle.id).values(used=3))
    db.commit()
    page.press("#prompt", "Enter")
    expect(page.locator("#renew")).to_be_visible()
    expect(page.locator("#renew")).to_have_text("Renew")
    expect(page.locator("#send")).to_be_hidden()
    expect(page.locator("#prompt")).to_have_value("a second idea, not to be lost")
    expect(page.locator(".turn")).to_have_count(1)
    expect(page.locator("#quota-used-up")).to_be_visible()
    assert renews_said(page) <= 1
    check(page, f"used-up-{label}", problems)
    # And on a fresh load, the same.
    page.reload()
    expect(page.locator("#renew")).to_be_visible()
    expect(page.locator("#prompt")).to_have_value("a second idea, not to be lost")
    page.press("#prompt", "Enter")
    expect(page.locator(".turn")).to_have_count(1)
    assert renews_said(page) <= 1

    assert problems == [], "\n".join(problems)


def hold(held: dict[str, Any], name: str, route: Any) -> None:
    """A route handler that keeps the request waiting, as ``held[name]``."""
    held[name] = route


def test_a_session_ending_gives_back_the_inputs_and_the_template_too(
    live_stack: Any, page: Any, user_factory: Any, make_cycle: Any
) -> None:
    """1, beyond the prompt: an image-to-image send keeps its attached photo (not marked gone
    because the server shows it to no one logged out), and a template's send keeps the
    template with its fields and photo; after logging in they are still there and go through
    as they are. A photo attached while the page still loads stays too."""
    from playwright.sync_api import expect

    base = live_stack.url
    user = user_factory()
    make_cycle(user, request_limit=5)
    log_in(page, base, user.email)
    banner = page.locator("#banner")
    ready = page.locator(".input-thumb[data-state=ready]")

    # Image to image, the photo attached (and still uploading) before the page has finished
    # loading: it stays.
    held: dict[str, Any] = {}
    for name in ("templates", "uploads"):
        page.route(f"**/api/v1/{name}", partial(hold, held, name))
    page.goto(f"{base}/chat")
    expect(page.locator("#model option")).not_to_have_count(0)
    page.click("label[for=mode-i2i]")
    photo = {"name": "me.png", "mimeType": "image/png", "buffer": png(128)}
    page.set_input_files("#file-input", files=[photo])
    expect(page.locator(".input-thumb[data-state=uploading]")).to_have_count(1)
    for name in ("templates", "uploads"):
        assert name in held, name
        held[name].continue_()
        page.unroute(f"**/api/v1/{name}")
        if name == "templates":
            expect(page.locator("#template-gallery .template-card")).not_to_have_count(0)
    expect(ready).to_have_count(1)
    expect(page.locator("#mode-i2i")).to_be_checked()

    # The session ends before the send: all of it comes back, the photo still ready once its
    # preview (which the server no longer shows) has failed to load.
    page.fill("#prompt", "the same scene as a watercolour")
    page.context.clear_cookies()
    page.press("#prompt", "Enter")
    expect(banner).to_contain_text("Your session has ended")
    expect(page.locator(".turn")).to_have_count(0)
    expect(page.locator("#prompt")).to_have_value("the same scene as a watercolour")
    page.wait_for_function("() => !document.querySelector('.input-thumb img')")
    expect(ready).to_have_count(1)
    expect(page.locator("#mode-i2i")).to_be_checked()
    # Typing on keeps the draft, photo included.
    page.type("#prompt", ", soft light")
    page.wait_for_function(
        "() => (localStorage.getItem('nproxy.chat.draft.new') || '').includes('soft light')"
    )
    banner.locator("a").click()
    submit_credentials(page, user.email)
    page.wait_for_url(f"{base}/chat")
    expect(page.locator("#prompt")).to_have_value("the same scene as a watercolour, soft light")
    expect(ready).to_have_count(1)
    expect(page.locator("#mode-i2i")).to_be_checked()
    # It goes through as it was: the photo is the turn's input.
    page.press("#prompt", "Enter")
    turn = page.locator(".turn").first
    expect(turn).to_have_attribute("data-state", "succeeded", timeout=GENERATION_TIMEOUT_MS)
    expect(turn.locator(".turn-inputs img")).to_have_count(1)
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}$"))
    conversation = page.url

    # A template filled in, photo and all; the session ends before the send.
    page.click("#templates-button")
    page.locator('#templates-dialog [data-template="fursona"]').click()
    page.set_input_files("#tf-photo", files=[photo])
    page.select_option("#tf-species", "Fox")
    page.fill("#tf-colours", "silver and blue")
    expect(page.locator('.image-slot[data-state="ready"]')).to_be_visible()
    page.context.clear_cookies()
    page.click("#send")
    expect(banner).to_contain_text("Your session has ended")
    expect(page.locator(".turn")).to_have_count(1)
    banner.locator("a").click()
    submit_credentials(page, user.email)
    page.wait_for_url(conversation)
    expect(page.locator(".turn")).to_have_count(1)
    expect(page.locator("#template-form")).to_be_visible()
    expect(page.locator("#tf-species")).to_have_value("Fox")
    expect(page.locator("#tf-colours")).to_have_value("silver and blue")
    expect(page.locator('.image-slot[data-state="ready"]')).to_be_visible()
    page.click("#send")
    expect(page.locator(".turn")).to_have_count(2)
    turn = page.locator(".turn").last
    expect(turn).to_have_attribute("data-state", "succeeded", timeout=GENERATION_TIMEOUT_MS)
    expect(turn.locator(".prompt-text")).to_have_text(
        "Fursona from your photo · Fox · silver and blue"
    )


def test_uploads_are_checked_before_sending_and_every_413_reads_the_same(
    live_stack: Any, page: Any, user_factory: Any, make_cycle: Any
) -> None:
    from playwright.sync_api import expect

    base = live_stack.url
    user = user_factory()
    make_cycle(user)
    log_in(page, base, user.email)
    page.goto(f"{base}/chat")
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if "/api/v1/uploads" in r.url else None)

    # 4. Too large for the server's limit (10 MB by default): refused here, never sent.
    page.click("label[for=mode-i2i]")
    big = {"name": "big.png", "mimeType": "image/png", "buffer": png() + b"\0" * (11 * MB)}
    page.set_input_files("#file-input", files=[big])
    error = page.locator(".input-thumb .thumb-error").last
    expect(error).to_have_text(re.compile(r"big\.png: Too large: 11 MB, at most 10 MB\."))
    not_image = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}
    page.set_input_files("#file-input", files=[not_image])
    expect(page.locator(".input-thumb .thumb-error").last).to_contain_text("Only PNG, JPEG or WebP")
    assert uploads == []

    # A server in front of the app answers 413 with an HTML page: the same clear words.
    page.route(
        "**/api/v1/uploads",
        lambda route: route.fulfill(
            status=413,
            content_type="text/html",
            body="<html><h1>413 Request Entity Too Large</h1></html>",
        ),
    )
    small = {"name": "small.png", "mimeType": "image/png", "buffer": png()}
    page.set_input_files("#file-input", files=[small])
    expect(page.locator(".input-thumb .thumb-error").last).to_have_text(
        re.compile(r"small\.png: Too large: \d+ (KB|bytes), at most 10 MB\.")
    )
    shot(page, "fixes-upload-too-large")

    # The template's photo slot checks the same way.
    page.click('#template-gallery [data-template="avatar"]')
    page.set_input_files("#tf-photo", files=[big])
    expect(page.locator("#tf-photo-error")).to_have_text("Too large: 11 MB, at most 10 MB.")
    problems: list[str] = []
    for size, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        resize(page, size)
        check(page, f"upload-refused-{label}", problems)
    assert problems == [], "\n".join(problems)


@pytest.fixture
def text_only_stack(db: Any, base_settings: dict[str, Any], tmp_path: Path) -> Iterator[LiveStack]:
    """The live stack with a demo model that answers in words only, every time."""
    settings = {
        **base_settings,
        "nproxy.providers": "demo",
        "nproxy.payments": "demo",
        "demo.delay_seconds": "0.2",
        "demo.text_only_rate": "1",
    }
    with demo_stack(settings, tmp_path, f"nproxy_browser_text_{os.getpid()}") as stack:
        yield stack


def test_a_text_only_answer_says_so_offers_a_retry_and_costs_nothing(
    text_only_stack: Any, page: Any, user_factory: Any, make_cycle: Any
) -> None:
    from playwright.sync_api import expect

    base = text_only_stack.url
    user = user_factory()
    make_cycle(user, request_limit=5)
    log_in(page, base, user.email)
    page.goto(f"{base}/chat")
    expect(page.locator("#quota-text")).to_have_text("About 100% left")
    page.fill("#prompt", "a lighthouse")
    page.press("#prompt", "Enter")
    turn = page.locator(".turn").first
    expect(turn).to_have_attribute("data-state", "failed", timeout=GENERATION_TIMEOUT_MS)
    error = turn.locator(".turn-error")
    expect(error).to_contain_text(
        "The model answered with text only: “I would rather describe this scene than draw it.”"
    )
    expect(error).not_to_contain_text("input image or a setting")
    expect(turn.get_by_role("button", name=re.compile("Try again"))).to_be_visible()
    # Nothing charged: the meter is where it was.
    expect(page.locator("#quota-text")).to_have_text("About 100% left")
    for size, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        resize(page, size)
        problems: list[str] = []
        check(page, f"text-only-{label}", problems)
        assert problems == [], problems
    turn.get_by_role("button", name=re.compile("Try again")).click()
    expect(page.locator(".turn")).to_have_count(2)


def test_sign_up_pricing_api_keys_and_landing_examples(
    live_stack: Any, browser: Any, user_factory: Any, make_cycle: Any
) -> None:
    from playwright.sync_api import expect

    base = live_stack.url
    problems: list[str] = []
    for size, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        context = browser.new_context(viewport=size)
        page = context.new_page()
        # 5. Sign-up without a plan lands on the plans.
        sign_up(page, base, f"new-{label}@example.com")
        page.wait_for_url(f"{base}/pricing")
        # 6. The Buy button is on the first screen, on a phone too.
        buy = page.locator("#checkout-form button[type=submit]")
        expect(buy).to_be_visible()
        box = buy.bounding_box()
        assert box is not None and box["y"] + box["height"] <= size["height"], box
        check(page, f"pricing-{label}", problems)

        context.close()

    # 7, with a key to list.
    user = user_factory()
    make_cycle(user)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    log_in(page, base, user.email)
    page.goto(f"{base}/account/api-keys")
    page.fill("#name", "laptop")
    page.press("#name", "Enter")
    headers = page.locator("table.keys thead th")
    expect(headers.last).to_have_text("Actions")
    assert all(text.strip() for text in headers.all_text_contents())
    check(page, "api-keys-desktop", problems)

    # 8. The landing page's examples open the chat with their prompt in the composer.
    page.goto(f"{base}/")
    example = page.locator(".examples a.example-link").first
    prompt = example.locator("figcaption").text_content().split("”")[0].strip("“ ")
    example.click()
    page.wait_for_url(re.compile(r"/chat$"))
    expect(page.locator("#prompt")).to_have_value(prompt)
    context.close()
    assert problems == [], "\n".join(problems)
