"""Accounts from Telegram: a stranger's /start makes a Telegram-only account, a web account is
linked by a single-use deep link, /web sends a single-use login link; bad codes change
nothing."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from admin_support import make_generation, make_payment
from apiclient import ApiClient
from customerbot.conftest import BOT_USERNAME, Chat, customer
from nproxy_core.accounts.models import User
from nproxy_core.customerbot.models import TelegramCustomer, TelegramLinkToken


def test_a_strangers_start_makes_one_telegram_only_account(bot, telegram, chat, db):
    answer = chat.say("/start", contains="Welcome")
    assert "account is ready" in answer.text
    found = customer(db, chat.id)
    assert found is not None and found.username == "ada"
    user = db.get(User, found.user_id)
    assert user.email is None
    again = chat.say("/start")
    assert "Welcome back" in again.text
    assert db.scalar(sa.select(sa.func.count()).select_from(TelegramCustomer)) == 1
    assert db.scalar(sa.select(sa.func.count()).select_from(User)) == 1
    # The commands are registered with setMyCommands.
    names = [c["command"] for c in telegram.commands]
    assert names == [
        "start",
        "help",
        "templates",
        "balance",
        "buy",
        "settings",
        "history",
        "invite",
        "language",
        "web",
        "paysupport",
    ]
    # A menu for Telegram apps in Russian and in Uzbek too, in their words; English for the rest.
    menus = telegram.commands_by_language
    assert set(menus) == {"", "ru", "uz"}
    described = {language: {c["command"]: c["description"] for c in menus[language]}
                 for language in menus}  # fmt: skip
    assert [c["command"] for c in menus["ru"]] == [c["command"] for c in menus["uz"]] == names
    assert described[""]["balance"] == "Plan and quota left"
    assert described["ru"]["balance"] == "Тариф и остаток"
    assert described["uz"]["balance"] == "Tarif va qolgan miqdor"


def _link_from_dashboard(make_app, user_factory, bot_settings):
    app = make_app(**{k.replace(".", "__"): v for k, v in bot_settings.items()})
    user = user_factory("web@example.com")
    assert ApiClient(app).login("web@example.com").status_int == 200
    dashboard = app.get("/dashboard")
    section = dashboard.html.find(id="telegram")
    assert section is not None and "Link Telegram" in section.text
    linked = dashboard.forms["telegram-link-form"].submit().follow()
    match = re.search(rf"https://t\.me/{BOT_USERNAME}\?start=(link_[A-Za-z0-9_-]+)", linked.text)
    assert match, linked.text
    return app, user, match.group(1)


def test_a_web_account_is_linked_once_by_its_deep_link(
    bot, telegram, db, make_app, user_factory, bot_settings
):
    app, user, payload = _link_from_dashboard(make_app, user_factory, bot_settings)
    ada = Chat(telegram, 6001, "ada")
    answer = ada.say(f"/start {payload}")
    assert "now linked to web@example.com" in answer.text
    assert customer(db, 6001).user_id == user.id
    # Used: a second person with the same link gets one clear message, nothing changes.
    eve = Chat(telegram, 6002, "eve")
    refused = eve.say(f"/start {payload}")
    assert "does not work" in refused.text
    assert customer(db, 6002) is None
    page = app.get("/dashboard")
    assert "@ada" in page.html.find(id="telegram").text


def test_expired_unknown_and_taken_codes_change_nothing(
    bot, telegram, db, make_app, user_factory, bot_settings
):
    _app, _user, payload = _link_from_dashboard(make_app, user_factory, bot_settings)
    # A Telegram user who already has an account of their own cannot take another's link.
    bob = Chat(telegram, 6003, "bob")
    bob.say("/start", contains="Welcome")
    own = customer(db, 6003).user_id
    refused = bob.say(f"/start {payload}")
    assert "already belongs to another" in refused.text
    assert customer(db, 6003).user_id == own
    # Unknown.
    assert "does not work" in bob.say("/start link_" + "x" * 43).text
    # Expired.
    db.execute(
        sa.update(TelegramLinkToken).values(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    )
    db.commit()
    carol = Chat(telegram, 6004, "carol")
    assert "does not work" in carol.say(f"/start {payload}").text
    assert customer(db, 6004) is None  # nothing changed
    # A payload that is not a deep link at all.
    assert "do not know this start link" in carol.say("/start hello!world").text


def test_web_sends_a_single_use_login_link(bot, telegram, chat, db, make_app, bot_settings):
    chat.say("/start", contains="Welcome")
    answer = chat.say("/web", contains="log in")
    link = re.search(r"http://localhost(/telegram/login/\S+)", answer.text).group(1)
    sent = [p for name, p in telegram.calls if name == "sendMessage" and "login" in str(p)]
    assert '"is_disabled": true' in sent[-1]["link_preview_options"]  # no preview fetches it
    app = make_app(**{k.replace(".", "__"): v for k, v in bot_settings.items()})
    # Opening the link (or a preview fetching it) uses nothing up: the button logs in.
    assert app.get(link).html.find(id="telegram-login")["data-outcome"] == "ask"
    page = app.get(link)
    opened = page.forms[0].submit()
    assert opened.status_int == 303
    page = opened.follow()
    assert "Telegram" in page.html.find(id="telegram").text
    me = app.get("/api/v1/me").json
    assert me["id"] == customer(db, chat.id).user_id and me["email"] is None
    other = make_app(**{k.replace(".", "__"): v for k, v in bot_settings.items()})
    refused = other.get(link, status=400)
    assert "does not work" in refused.html.find(id="telegram-login").text
    assert not refused.html.find(id="telegram-login").find("form")


def test_unlinking_from_the_account_page(bot, telegram, db, make_app, user_factory, bot_settings):
    app, _user, payload = _link_from_dashboard(make_app, user_factory, bot_settings)
    Chat(telegram, 6005, "dan").say(f"/start {payload}", contains="linked")
    page = app.get("/dashboard")
    done = page.forms["telegram-unlink-form"].submit().follow()
    assert "unlinked" in done.html.find(id="telegram").text
    assert customer(db, 6005) is None


def test_admin_lists_telegram_only_accounts(bot, chat, db, make_app, user_factory, bot_settings):
    chat.say("/start", contains="Welcome")
    app = make_app()
    user_factory("boss@example.com", admin=True)
    assert ApiClient(app).login("boss@example.com").status_int == 200
    listing = app.get("/admin/users")
    user_id = customer(db, chat.id).user_id
    assert f"Telegram user #{user_id}" in listing.text and "None" not in listing.text
    detail = app.get(f"/admin/users/{user_id}")
    assert detail.html.find("h1").text == f"Telegram user #{user_id}"
    # Their payments and generations name them the same way, in the lists and on each page.
    account = db.get(User, user_id)
    payment = make_payment(db, account)
    generation = make_generation(db, account)
    for url in (
        "/admin/payments",
        f"/admin/payments/{payment.id}",
        "/admin/generations",
        f"/admin/generations/{generation.id}",
    ):
        page = app.get(url)
        assert f"Telegram user #{user_id}" in page.text, url
        assert ">None<" not in page.text, url


def test_a_telegram_only_account_adds_an_email_and_a_password(
    bot, telegram, chat, db, make_app, bot_settings, user_factory
):
    user_factory("taken@example.com")
    chat.say("/start", contains="Welcome")
    answer = chat.say("/web", contains="log in")
    link = re.search(r"http://localhost(/telegram/login/\S+)", answer.text).group(1)
    app = make_app(**{k.replace(".", "__"): v for k, v in bot_settings.items()})
    app.get(link).forms[0].submit()
    page = app.get("/dashboard")
    # No password yet: nothing to change, nothing for two-factor login to guard.
    assert "Change password" not in page.text and page.html.find(id="two-factor-login") is None
    form = page.forms["telegram-credentials-form"]
    form["email"], form["password"] = "taken@example.com", "correct horse battery"
    refused = form.submit().follow()
    assert "already exists" in refused.html.find(id="credentials-error").text
    form = refused.forms["telegram-credentials-form"]
    form["email"], form["password"] = " Ada@Example.com ", "short"
    assert "8" in form.submit().follow().html.find(id="credentials-error").text
    form = app.get("/dashboard").forms["telegram-credentials-form"]
    form["email"], form["password"] = " Ada@Example.com ", "correct horse battery"
    done = form.submit().follow()
    assert "ada@example.com" in done.html.find(id="account").text
    assert "Change password" in done.text and done.html.find(id="two-factor-login")
    assert app.get("/api/v1/me").json["email"] == "ada@example.com"  # still logged in
    other = ApiClient(make_app())
    assert other.login("ada@example.com").status_int == 200
    assert customer(db, chat.id).user.email == "ada@example.com"
