"""Customer pages in Russian and Uzbek leave no English behind (DESIGN 4.15): every word a reader
sees (text, labels for screen readers, placeholders, titles) that the English rendering of the
same page has is a name (nproxy, Google, a model, a currency) or the page's failure."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup

from apiclient import ApiClient

#: Names that read the same in every language: the product, brands, models, currencies, units.
NAMES = {
    "nproxy", "google", "nano", "banana", "api", "utc", "usd", "btc", "xtr", "telegram",
    "stars", "demo", "gemini", "openai", "crypto", "nowpayments", "stripe", "image", "flash",
    "pro", "gpt", "csrf", "utf", "ru", "uz", "en", "english", "o\u02bbzbekcha",
    "png", "jpeg", "webp", "enter", "shift", "ctrl",
}  # fmt: skip
#: Words English shares with a translation: Uzbek says "model", "neon" and "robot" too.
SHARED = {"ru": set(), "uz": {"model", "neon", "robot", "pastel", "retro", "render"}}
WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019\u02bb]+")
ATTRIBUTES = ("aria-label", "placeholder", "title", "alt")


def visible_words(html: str) -> set[str]:
    """The Latin-script words a reader meets on the page, lower-cased."""
    soup = BeautifulSoup(html, "html.parser")
    for hidden in soup(["script", "style", "template"]):
        hidden.decompose()
    texts = list(soup.stripped_strings)
    for element in soup.find_all(True):
        texts += [element[name] for name in ATTRIBUTES if isinstance(element.get(name), str)]
        if element.name == "input" and element.get("type") in ("submit", "button"):
            texts.append(element.get("value", ""))
    # Addresses (an invitation link) are not words.
    texts = [text for text in texts if not text.startswith(("http://", "https://"))]
    words = {word.lower() for text in texts for word in WORD.findall(text)}
    return {word for word in words if len(word) > 2 and word not in NAMES}


def english_left(app, url: str, language: str) -> set[str]:
    english = visible_words(app.get(url, headers={"Accept-Language": "en"}, status="*").text)
    translated = visible_words(app.get(url, headers={"Accept-Language": language}, status="*").text)
    return english & translated - SHARED[language]


PUBLIC_PAGES = ["/", "/pricing", "/login", "/register", "/forgot-password", "/no-such-page"]


@pytest.mark.parametrize("language", ["ru", "uz"])
@pytest.mark.parametrize("url", PUBLIC_PAGES)
def test_a_visitors_page_has_no_english_left(app, url, language):
    assert english_left(app, url, language) == set()


@pytest.mark.parametrize("language", ["ru", "uz"])
def test_a_failed_login_says_why_in_the_readers_language(app, user_factory, language):
    user_factory("reader@example.com")
    page = app.get("/login", headers={"Accept-Language": language})
    form = next(form for form in page.forms.values() if form.action.startswith("/login"))
    form["email"], form["password"] = "reader@example.com", "not the password"
    english = visible_words(form.submit(status="*", headers={"Accept-Language": "en"}).text)
    answer = form.submit(status="*", headers={"Accept-Language": language})
    left = english & visible_words(answer.text) - SHARED[language]
    assert left <= {"reader", "example", "com"}


@pytest.mark.parametrize("language", ["ru", "uz"])
@pytest.mark.parametrize("url", ["/", "/pricing", "/chat", "/library", "/dashboard"])
def test_a_logged_in_customers_page_has_no_english_left(app, user_factory, url, language):
    user_factory("reader@example.com")
    ApiClient(app).login("reader@example.com")
    # The account's email, and the session's address, which WebTest leaves "unknown".
    assert english_left(app, url, language) <= {"reader", "example", "com", "unknown"}
