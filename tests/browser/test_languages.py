"""Customer pages in Russian and Uzbek as a person meets them (DESIGN 4.15): the chat after its
JavaScript has filled it, and the pages around it, at 1280 and 390 px: no English word of the
English rendering left (names aside), no sideways scrolling (Russian words are long), no
serious accessibility problem (axe-core), a screenshot each in ``test-artifacts/browser/``."""

from __future__ import annotations

import re
from typing import Any

import pytest

from browser_support import look_at, sign_up

VIEWS = (
    ({"width": 1280, "height": 860}, "1280", "light"),
    ({"width": 390, "height": 844}, "390", "light"),
)
#: Names that read the same in every language, and words Uzbek shares with English.
NAMES = {
    "nproxy", "google", "nano", "banana", "api", "utc", "usd", "demo", "pro", "png", "jpeg",
    "webp", "enter", "shift", "ctrl", "english", "model", "neon", "robot", "pastel", "retro",
    "render", "telegram", "o\u02bbzbekcha", "chrome", "linux", "bearer", "curl", "python",
    # The test's own address (reader-ru@example.com).
    "reader", "example", "com",
    # Uzbek calls the shipped "Avatar" template so too.
    "avatar",
}  # fmt: skip
WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019\u02bb]+")
PAGES = ("/", "/pricing", "/chat", "/library", "/dashboard")


def words_on(page: Any) -> set[str]:
    """The Latin-script words of the page's visible text and its labels, lower-cased: the
    template gallery's too, whose words the admin translates (the shipped ones came so)."""
    text = page.evaluate(
        """() => {
          const labelled = document.querySelectorAll('[aria-label],[placeholder],[title],img[alt]');
          const names = ['aria-label', 'placeholder', 'title', 'alt'];
          const labels = [...labelled].map((e) => names.map((a) => e.getAttribute(a) || ''));
          // Code reads the same in every language: a key, an example request.
          let text = document.body.innerText;
          for (const code of document.querySelectorAll('pre, code')) {
            text = text.split(code.innerText).join(' ');
          }
          return [text, ...labels.flat()].join(' ');
        }"""
    )
    text = re.sub(r"https?://\S+", "", text)  # addresses (an invitation link) are not words
    found = {word.lower() for word in WORD.findall(text)}
    return {word for word in found if len(word) > 2 and word not in NAMES}


def speak(page: Any, base: str, language: str) -> None:
    page.context.add_cookies([{"name": "lang", "value": language, "url": base}])


@pytest.mark.parametrize("language", ["ru", "uz"])
def test_the_customer_pages_leave_no_english_and_fit_a_phone(
    live_stack: Any, page: Any, language: str
) -> None:
    base = live_stack.url
    sign_up(page, base, f"reader-{language}@example.com")
    page.wait_for_url(f"{base}/pricing")
    problems: list[str] = []
    for path in PAGES:
        speak(page, base, "en")
        page.goto(f"{base}{path}")
        page.wait_for_load_state("networkidle")
        english = words_on(page)
        speak(page, base, language)

        def open_page(path: str = path) -> None:
            page.goto(f"{base}{path}")

        look_at(
            page, f"languages-{language}{path.replace('/', '-') or '-'}", problems, open_page, VIEWS
        )
        left = english & words_on(page)
        if left:
            problems.append(f"{path} in {language} still says {sorted(left)}")
    assert problems == [], "\n".join(problems)


#: The account's own pages, with a key made and a plan paid first so that the keys' table and
#: the payments' show; then the payment's page and its demo checkout.
ACCOUNT_PAGES = (
    "/account/api-keys",
    "/account/2fa",
    "/account/password",
    "/billing",
    "/verify-email",
)


@pytest.mark.parametrize("language", ["ru", "uz"])
def test_the_account_pages_leave_no_english_and_fit_a_phone(
    live_stack: Any, page: Any, language: str
) -> None:
    base = live_stack.url
    sign_up(page, base, f"keys-{language}@example.com")
    page.wait_for_url(f"{base}/pricing")
    speak(page, base, language)
    page.goto(f"{base}/account/api-keys")
    page.fill("#name", "мой ключ")
    page.locator("form.newkey-form button[type=submit]").click()
    page.wait_for_selector("#new-key")
    # The copy button's script says what it did in the reader's language too.
    label = page.locator("#copy-key").text_content()
    page.click("#copy-key")
    copied = {"ru": ("Скопировано", "Нажмите Ctrl+C"), "uz": ("Nusxalandi", "Ctrl+C ni bosing")}
    page.wait_for_function(
        "(label) => document.querySelector('#copy-key').textContent !== label", arg=label
    )
    assert page.locator("#copy-key").text_content() in copied[language]
    # A plan paid through the demo checkout: the payment's page and a row in the history.
    page.goto(f"{base}/pricing")
    page.select_option("#processor", "demo")
    page.click("#checkout button[type=submit]")
    page.wait_for_url(re.compile(r"/billing/demo/checkout/"))
    checkout = page.url.removeprefix(base)
    page.click("button[value=paid]")
    page.wait_for_selector("#payment[data-status=finished]")
    paid = page.url.removeprefix(base)
    # The payment's reference is a name too.
    reference = {word.lower() for word in WORD.findall(checkout.rsplit("/", 1)[1])}
    problems: list[str] = []
    for path in (*ACCOUNT_PAGES, paid, checkout):
        speak(page, base, "en")
        page.goto(f"{base}{path}")
        page.wait_for_load_state("networkidle")
        english = words_on(page)
        speak(page, base, language)

        def open_page(path: str = path) -> None:
            page.goto(f"{base}{path}")

        name = {paid: "-payment", checkout: "-demo-checkout"}.get(path, path.replace("/", "-"))
        look_at(page, f"languages-{language}{name}", problems, open_page, VIEWS)
        # The account's address is the test's own (keys-ru@example.com).
        left = english & words_on(page) - {"keys"} - reference
        if left:
            problems.append(f"{path} in {language} still says {sorted(left)}")
    assert problems == [], "\n".join(problems)
