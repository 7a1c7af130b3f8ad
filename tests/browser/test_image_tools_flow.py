"""The image tools in a real browser, at desktop and phone width (issue 26): a fursona from an
uploaded photo (the template), vary it, upscale the variation to a larger size, favourite it,
share it and open the link logged out (Open Graph tags, no prompt), revoke the link (404),
delete the image (its media 404), and search the library and filter its favourites; the
lightbox moves on a swipe. Every page and dialog on the way: no sideways scrolling at 390 px,
no serious axe finding.

Screenshots land in ``test-artifacts/browser/`` (``tools-*``).
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from browser_support import CHROMIUM, axe_problems, shot, sideways_scroll, wait_for_images

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
]

PASSWORD = "correct horse battery"
WIDTHS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}


def _photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 800), (180, 120, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def _customer(live_stack: Any, email: str) -> None:
    """An account with a plan and a pack of units (an upscale costs 6), made as an operator
    would."""
    for args, stdin in (
        (("users", "create", email, "--password-stdin"), f"{PASSWORD}\n"),
        (("users", "grant-cycle", email, "--reason", "browser test"), None),
        (
            ("packs", "grant", email, "--units", "40", "--months", "1", "--reason", "test"),
            None,
        ),
    ):
        done = live_stack.nproxy(*args, stdin=stdin)
        assert done.returncode == 0, done.stderr or done.stdout


def _log_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_load_state("networkidle")


def _check(page: Any, problems: list[str], name: str) -> None:
    shot(page, name)
    wide = sideways_scroll(page)
    if wide:
        problems.append(f"{name}: {wide}px of sideways scroll")
    problems.extend(f"{name}: {problem}" for problem in axe_problems(page))


def _status(page: Any, url: str) -> int:
    # Past the browser's cache: what the server answers now.
    return page.evaluate("url => fetch(url, {cache: 'no-store'}).then(r => r.status)", url)


def _open_last_image(page: Any) -> None:
    from playwright.sync_api import expect

    page.locator(".turn .tile-open").last.click()
    expect(page.locator("#lightbox")).to_be_visible()
    # Its tools arrive from /api/v1/images/{id}.
    expect(page.locator("#lightbox-favorite")).to_be_enabled()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_fursona_vary_upscale_favourite_share_revoke_delete_search(
    live_stack: Any, browser: Any, db: Any, width: str
) -> None:
    from playwright.sync_api import expect

    from nproxy_core.prompt_templates.models import PromptTemplate

    # An admin's edit: the fursona template made by Demo Pro.
    db.execute(
        sa.update(PromptTemplate).where(PromptTemplate.slug == "fursona").values(model="demo-pro")
    )
    db.commit()

    base = live_stack.url
    email = f"tools-{width}@example.com"
    _customer(live_stack, email)
    viewport = WIDTHS[width]
    context = browser.new_context(viewport=viewport, has_touch=width == "phone")
    page = context.new_page()
    problems: list[str] = []
    _log_in(page, base, email)

    # The fursona template from an uploaded photo. The admin set it to Demo Pro, whose
    # 768 x 1024 portrait has a larger size (1536 x 2048).
    page.goto(f"{base}/chat")
    page.click('#template-gallery [data-template="fursona"]')
    page.set_input_files(
        "#tf-photo", files=[{"name": "me.png", "mimeType": "image/png", "buffer": _photo()}]
    )
    page.select_option("#tf-species", "Fox")
    page.fill("#tf-colours", "copper and teal")
    expect(page.locator('.image-slot[data-state="ready"]')).to_be_visible()
    page.click("#send")
    wait_for_images(page, page.locator(".turn").nth(0), 1)
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}$"))
    conversation_url = page.url

    # Vary: a new turn in the same conversation, from this image.
    _open_last_image(page)
    _check(page, problems, f"tools-01-lightbox-{width}")
    page.click("#lightbox-vary")
    page.wait_for_url(conversation_url)
    expect(page.locator(".turn")).to_have_count(2)
    wait_for_images(page, page.locator(".turn").nth(1), 1)
    expect(page.locator(".turn").nth(1)).to_contain_text("copper and teal")

    # Upscale the variation: the button names the size and its units.
    _open_last_image(page)
    upscale = page.locator("#lightbox-upscales button")
    expect(upscale).to_have_count(1)
    expect(upscale).to_have_text("Upscale to 1536 \u00d7 2048 · 6 units")
    upscale.click()
    page.wait_for_url(conversation_url)
    expect(page.locator(".turn")).to_have_count(3)
    wait_for_images(page, page.locator(".turn").nth(2), 1)
    images = page.evaluate("fetch('/api/v1/images').then(r => r.json())")["images"]
    upscaled = images[0]
    assert (upscaled["width"], upscaled["height"]) == (1536, 2048)
    assert [i["width"] for i in images] == [1536, 768, 768]
    # The chat's tiles and the library show thumbnails, never the 2048 px original.
    assert upscaled["thumb_url"] == f"/media/{upscaled['id']}?size=thumb"

    # Favourite it.
    _open_last_image(page)
    favourite = page.locator("#lightbox-favorite")
    expect(favourite).to_have_attribute("aria-pressed", "false")
    favourite.click()
    expect(favourite).to_have_attribute("aria-pressed", "true")

    # Share it: a link, "show prompt" left off.
    page.click("#lightbox-share")
    expect(page.locator("#share-dialog")).to_be_visible()
    page.click("#share-create")
    link = page.locator("#share-link")
    expect(link).to_have_value(re.compile(rf"^{re.escape(base)}/s/[A-Za-z0-9_-]{{32}}$"))
    share_url = link.input_value()
    _check(page, problems, f"tools-02-share-{width}")

    # Opened logged out: Open Graph tags, the image, no prompt.
    visitor = browser.new_context(viewport=viewport).new_page()
    answer = visitor.goto(share_url)
    assert answer.status == 200
    og = {
        key: visitor.locator(f'meta[property="{key}"]').get_attribute("content")
        for key in ("og:title", "og:image", "og:type")
    }
    assert og == {
        "og:title": "An image made with nproxy",
        "og:image": f"{share_url}/image",
        "og:type": "website",
    }
    assert "copper" not in visitor.content()
    visitor.wait_for_function(
        "() => document.querySelector('.shared-image img').naturalWidth === 1536"
    )
    _check(visitor, problems, f"tools-03-shared-page-{width}")

    # Revoke: the page and its image are gone.
    page.click("#share-revoke")
    expect(page.locator("#share-status")).to_have_text("Link revoked: it no longer works.")
    page.click("#share-close")
    assert visitor.goto(share_url).status == 404
    assert _status(visitor, f"{share_url}/image") == 404
    visitor.context.close()

    # Delete the upscaled image: its media answer 404, the others stay.
    page.click("#lightbox-delete")
    expect(page.locator("#image-delete-dialog")).to_be_visible()
    _check(page, problems, f"tools-04-delete-{width}")
    page.click("#image-delete-confirm")
    # Deleted, then the conversation loads again without it.
    expect(page.locator("#image-delete-dialog")).to_be_hidden()
    page.wait_for_load_state("networkidle")
    expect(page.locator(".turn .tile img")).to_have_count(2)
    for url in (f"/media/{upscaled['id']}", upscaled["thumb_url"]):
        assert _status(page, url) == 404, url
    assert _status(page, f"/media/{images[1]['id']}") == 200

    # The library: thumbnails, search by prompt words, the favourites filter.
    page.goto(f"{base}/library")
    tiles = page.locator(".library-tile")
    expect(tiles).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.library-tile img')].every(i => i.complete && i.src)"
    )
    sources = tiles.locator("img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
    assert all(src.endswith("?size=thumb") for src in sources), sources
    _check(page, problems, f"tools-05-library-{width}")
    page.fill("#library-q", "copper and teal")
    expect(tiles).to_have_count(2)
    page.fill("#library-q", "no such words")
    expect(page.locator("#library-none")).to_be_visible()
    expect(tiles).to_have_count(0)
    page.fill("#library-q", "")
    expect(tiles).to_have_count(2)
    page.click("#library-favorites")
    expect(page.locator("#library-favorites")).to_have_attribute("aria-pressed", "true")
    # The favourite was the deleted image: none left.
    expect(page.locator("#library-none")).to_be_visible()
    page.click("#library-clear")
    expect(tiles).to_have_count(2)
    # A tile's star makes a favourite; the filter finds it.
    tiles.first.locator('[aria-label^="Favourite"]').click()
    expect(tiles.first.locator('[aria-label^="Favourite"]')).to_have_attribute(
        "aria-pressed", "true"
    )
    page.click("#library-favorites")
    expect(tiles).to_have_count(1)
    page.click("#library-favorites")
    expect(tiles).to_have_count(2)

    # The lightbox moves on a horizontal swipe (touch pointer events).
    tiles.first.locator(".tile-open").click()
    expect(page.locator("#lightbox-position")).to_have_text("1 of 2")
    swipe = """([dx]) => {
      const stage = document.getElementById('lightbox-stage');
      const at = (type, x) => stage.dispatchEvent(new PointerEvent(type, {
        pointerId: 7, pointerType: 'touch', clientX: x, clientY: 300, bubbles: true}));
      at('pointerdown', 200); at('pointerup', 200 + dx);
    }"""
    page.evaluate(swipe, [-120])
    expect(page.locator("#lightbox-position")).to_have_text("2 of 2")
    page.evaluate(swipe, [120])
    expect(page.locator("#lightbox-position")).to_have_text("1 of 2")
    _check(page, problems, f"tools-06-library-lightbox-{width}")
    context.close()

    assert problems == [], "\n".join(problems)
