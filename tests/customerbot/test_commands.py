"""The customer bot's commands: help, balance, buy, settings, history, language, invite,
paysupport, an unknown command, and a reply Telegram asks to wait with."""

from __future__ import annotations

import datetime as dt

from customerbot.conftest import customer
from nproxy_core.billing.models import BalanceSource, CreditPack, PackBalance
from nproxy_core.db import utcnow


def test_help_balance_and_unknown(bot, telegram, chat, db, make_cycle):
    chat.say("/start", contains="Welcome")
    assert "/balance" in chat.say("/help").text
    assert "no plan yet" in chat.say("/balance").text
    found = customer(db, chat.id)
    make_cycle(found.user, request_limit=100, used=30)
    pack = CreditPack(code="p20", name="20 units", price=5, currency="USD", units=20)
    db.add(pack)
    db.flush()
    db.add(
        PackBalance(
            user_id=found.user_id,
            pack_id=pack.id,
            source=BalanceSource.GRANT,
            label="20 units",
            units=20,
            expires_at=utcnow() + dt.timedelta(days=300),
        )
    )
    db.commit()
    balance = chat.say("/balance").text
    assert "about 80%" in balance and "Monthly" in balance
    assert "20 units" in balance
    assert "30" not in balance.split("Quota left")[1].split("\n")[0]  # no exact usage
    assert "do not know that command" in chat.say("/nonsense").text


def test_settings_language_history_invite_paysupport_and_buy(bot, telegram, chat, db):
    chat.say("/start", contains="Welcome")
    menu = chat.say("/settings", contains="Resolution")
    choices = chat.press(chat.button(menu, "Resolution"), message=menu, contains="Choose")
    second = choices.buttons()[1]
    chat.press(second["callback_data"], contains="Saved")
    assert customer(db, chat.id).resolution == second["text"]
    pick = chat.say("/language", contains="language")
    chat.press(chat.button(pick, "Русский"), contains="Язык сохранён")
    assert customer(db, chat.id).language == "ru"
    # From now on the bot speaks Russian, the account's web pages too.
    assert customer(db, chat.id).user.language == "ru"
    assert "пока нет изображений" in chat.say("/history").text
    pick = chat.say("/language", contains="Выберите язык бота")
    chat.press(chat.button(pick, "English"), contains="Language saved")
    assert "no images yet" in chat.say("/history").text
    assert chat.say("/invite").text  # a link, or "not available yet" until referrals land
    assert "Payment questions" in chat.say("/paysupport").text
    buy = chat.say("/buy", contains="Plans and packs")
    assert any(b.get("url", "").endswith("/pricing") for b in buy.buttons())


def test_buy_and_balance_name_plans_and_packs_in_the_customers_language(bot, chat, db, make_cycle):
    chat.say("/start", contains="Welcome")
    pick = chat.say("/language", contains="language")
    chat.press(chat.button(pick, "Русский"), contains="Язык сохранён")
    pack = CreditPack(
        code="p20", name="20 units", price=5, currency="USD", units=20, price_stars=250,
        translations={"ru": {"name": "20 единиц"}},
    )  # fmt: skip
    plain = CreditPack(code="p50", name="Fifty", price=9, currency="USD", units=50)
    db.add_all([pack, plain])
    db.flush()
    found = customer(db, chat.id)
    make_cycle(found.user)
    db.add(
        PackBalance(
            user_id=found.user_id, pack_id=pack.id, source=BalanceSource.PURCHASE,
            label="20 units", units=20, expires_at=utcnow() + dt.timedelta(days=30),
        )
    )  # fmt: skip
    db.commit()
    buy = chat.say("/buy", contains="Тарифы")
    # The shipped plan's name and the admin's Russian one; a pack with none in English.
    assert "Месячный" in buy.text and "20 единиц" in buy.text and "Fifty" in buy.text
    assert "monthly" not in buy.text and "p20" not in buy.text
    assert any(b["text"].startswith("20 единиц") for b in buy.buttons())
    balance = chat.say("/balance").text
    assert "Месячный" in balance and "20 единиц" in balance
    assert "Monthly" not in balance and "20 units" not in balance


def test_a_reply_telegram_answers_with_429_is_sent_after_its_wait(bot, telegram, chat):
    chat.say("/start", contains="Welcome")
    refused = telegram.refused
    telegram.rate_limit(retry_after=1)
    answer = chat.say("/help", contains="/balance")
    assert telegram.refused == refused + 1
    assert not any("went wrong" in m.text for m in telegram.sent_to(chat.id))
    assert answer.method == "sendMessage"
