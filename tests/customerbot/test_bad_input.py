"""Bad input to the customer bot: each gets one clear message and changes nothing."""

from __future__ import annotations

import sqlalchemy as sa

from customerbot.conftest import Chat, customer
from customerbot.test_generating import png
from nproxy_core.customerbot.models import TelegramDelivery
from nproxy_core.generation.models import Generation
from nproxy_core.uploads.models import Upload


def nothing_made(db) -> bool:
    db.expire_all()
    return all(
        db.scalar(sa.select(sa.func.count()).select_from(model)) == 0
        for model in (Generation, Upload, TelegramDelivery)
    )


def answer_to(telegram, chat: Chat, send) -> str:
    seen = chat.seen()
    send()
    return telegram.wait_for_message(chat.id, after=seen).text


def test_files_stickers_albums_and_captions_that_cannot_be_used(bot, telegram, chat, db):
    chat.say("/start", contains="Welcome")
    pdf = answer_to(
        telegram,
        chat,
        lambda: telegram.send_document(
            chat.id,
            b"%PDF-1.4 nothing",
            mime_type="application/pdf",
            file_name="a.pdf",
            caption="draw this",
        ),
    )
    assert "only use photos" in pdf
    big = answer_to(
        telegram,
        chat,
        lambda: telegram.send_document(
            chat.id,
            png(),
            mime_type="image/png",
            file_name="big.png",
            caption="x",
            size=30 * 1024 * 1024,
        ),
    )
    assert "larger than 20 MB" in big
    sticker = answer_to(telegram, chat, lambda: telegram.send_sticker(chat.id))
    assert "Stickers cannot be used" in sticker

    def album_of_11() -> None:
        for n in range(11):
            telegram.send_photo(chat.id, png(), caption="x" if n == 0 else None, media_group_id="a")

    assert "at most 10 photos" in answer_to(telegram, chat, album_of_11)
    long = answer_to(
        telegram, chat, lambda: telegram.send_photo(chat.id, png(), caption="y" * 5000)
    )
    assert "longer than 4000 characters" in long
    long_text = answer_to(telegram, chat, lambda: telegram.send_text(chat.id, "z" * 4090))
    assert "longer than 4000 characters" in long_text
    no_caption = answer_to(telegram, chat, lambda: telegram.send_photo(chat.id, png()))
    assert "Add a caption" in no_caption
    seen = chat.seen()
    telegram.send_photo(chat.id, b"not a picture", caption="go")
    broken = telegram.wait_for(chat.id, method="editMessageText", after=seen).text
    assert "image" in broken.lower()  # the upload check's own words
    assert nothing_made(db)


def test_forged_and_foreign_buttons_do_nothing(bot, telegram, chat, db):
    chat.say("/start", contains="Welcome")
    menu = chat.say("/settings", contains="Model")
    batch = chat.button(menu, "Batch")
    # Forged data.
    answers = len(telegram.callback_answers)
    telegram.press_button(chat.id, "s:b:4|0000000000000000")
    telegram.press_button(chat.id, "x" * 64)
    eve = Chat(telegram, 7002, "eve")
    eve.say("/start", contains="Welcome")
    # Another user's button (sent to ada, pressed by eve).
    telegram.press_button(eve.id, batch, message=menu)
    import time

    deadline = time.monotonic() + 15
    while len(telegram.callback_answers) < answers + 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    refused = [a.get("text") for a in telegram.callback_answers[answers:]]
    assert refused == ["This button does not work any more."] * 3
    # The real one works for its own user.
    choices = chat.press(batch, message=menu, contains="Choose")
    chat.press(chat.button(choices, "2"), contains="Saved")
    assert customer(db, chat.id).batch_size == 2
    assert customer(db, eve.id).batch_size == 1


def test_the_webs_upload_limit_holds_in_telegram(start_bot, bot_settings, telegram, chat, db):
    bot_settings["nproxy.limits.uploads"] = "2/hour"
    start_bot()
    chat.say("/start", contains="Welcome")
    seen = chat.seen()
    telegram.send_photo(chat.id, png(), caption="one", media_group_id="m")
    telegram.send_photo(chat.id, png("blue"), media_group_id="m")
    telegram.send_photo(chat.id, png("green"), media_group_id="m")
    said = telegram.wait_for(chat.id, method="editMessageText", after=seen).text
    assert "limit on uploads" in said
    assert nothing_made(db)


def test_an_album_that_cannot_be_fetched_gets_one_clear_message(bot, telegram, chat, db):
    chat.say("/start", contains="Welcome")
    telegram.downloads_failing = True
    seen = chat.seen()
    telegram.send_photo(chat.id, png(), caption="blend these", media_group_id="lost")
    telegram.send_photo(chat.id, png("blue"), media_group_id="lost")
    said = telegram.wait_for_message(chat.id, after=seen, contains="went wrong", timeout=20)
    assert said.text.startswith("Something went wrong")
    assert nothing_made(db)
