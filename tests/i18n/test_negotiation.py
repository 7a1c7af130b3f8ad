"""Which language a page speaks (DESIGN 4.15): the account's saved choice, then ``?lang=``,
then the ``lang`` cookie, then ``Accept-Language``, then English; the footer's picker keeps a
choice in the cookie and, for someone logged in, on the account."""

from __future__ import annotations

import pytest

from apiclient import ApiClient
from nproxy_core.accounts.models import User


def page_language(app, url: str = "/", **headers: str) -> str:
    return app.get(url, headers=headers).html.html["lang"]


def test_a_visitor_with_no_hint_reads_english(app):
    assert page_language(app) == "en"


def test_a_page_in_russian_speaks_russian(app):
    page = app.get("/?lang=ru")
    assert page.html.find("a", class_="skip-link").text == "Перейти к содержимому"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        ("uz", "uz"),
        ("de-DE,de;q=0.9", "en"),
        ("de;q=1, uz-Latn;q=0.7, ru;q=0.5", "uz"),
    ],
)
def test_accept_language_picks_the_best_offered_language(app, header, expected):
    assert page_language(app, **{"Accept-Language": header}) == expected


def test_the_cookie_outranks_accept_language_and_the_query_outranks_the_cookie(app):
    app.set_cookie("lang", "uz")
    assert page_language(app, **{"Accept-Language": "ru"}) == "uz"
    assert page_language(app, "/?lang=ru", **{"Accept-Language": "en"}) == "ru"
    assert page_language(app, "/?lang=xx") == "uz"


def test_an_accounts_saved_choice_outranks_every_hint(app, db, user_factory):
    user = user_factory("saved@example.com")
    user.language = "ru"
    db.commit()
    ApiClient(app).login("saved@example.com")
    app.set_cookie("lang", "uz")
    assert page_language(app, "/?lang=en", **{"Accept-Language": "uz"}) == "ru"


def picker_form(app, url: str = "/"):
    return next(form for form in app.get(url).forms.values() if form.action == "/language")


def test_the_picker_keeps_a_visitors_choice_in_a_cookie_and_goes_back(app):
    form = picker_form(app, "/pricing?lang=en")
    form["language"] = "ru"
    answer = form.submit(status=303)
    # Back to the same page, without the ?lang= that would outrank the new choice.
    assert answer.headers["Location"].endswith("/pricing")
    assert app.cookies["lang"] == "ru"
    assert answer.follow().html.html["lang"] == "ru"


def test_the_picker_saves_a_logged_in_accounts_choice(app, db, user_factory):
    user = user_factory("picker@example.com")
    ApiClient(app).login("picker@example.com")
    form = picker_form(app)
    form["language"] = "uz"
    form.submit(status=303)
    db.expire_all()
    assert db.get(User, user.id).language == "uz"


def test_the_picker_never_sends_anyone_to_another_site(app):
    form = picker_form(app)
    form["language"] = "ru"
    form["next"] = "//evil.example/x"
    assert form.submit(status=303).headers["Location"] == "http://localhost/"


def test_the_picker_refuses_a_language_it_does_not_offer(app):
    form = picker_form(app)
    form.fields["language"][0].force_value("xx")
    form.submit(status=303)
    assert "lang" not in app.cookies
