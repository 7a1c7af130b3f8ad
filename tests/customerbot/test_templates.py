"""Prompt templates in the customer bot: /templates lists them, a template's fields are asked
one at a time (a select as buttons in the customer's language, a text as a reply, an image as
a photo), and the filled-in template is submitted like a typed prompt; a forged or stale
button and an answer that does not fit change nothing."""

from __future__ import annotations

import sqlalchemy as sa

from customerbot.conftest import Chat, customer
from customerbot.test_bad_input import nothing_made
from customerbot.test_generating import paying, png, wait_photo
from nproxy_core.customerbot.forms import Form, Forms, Question, typed_answer
from nproxy_core.customerbot.services import Refused
from nproxy_core.generation.models import Message
from nproxy_core.plugins import Mode
from nproxy_core.prompt_templates.models import TemplateRun


def test_a_sticker_from_a_text_and_a_select_is_delivered_as_a_photo(
    bot, worker, telegram, chat, db, make_cycle
):
    paying(chat, db, make_cycle)
    # /templates is in the menu in every language.
    menus = telegram.commands_by_language
    assert set(menus) == {"", "ru", "uz"}
    assert all("templates" in [c["command"] for c in menu] for menu in menus.values())
    listing = chat.say("/templates", contains="Choose a template")
    titles = [b["text"] for b in listing.buttons()]
    assert titles[:2] == ["Fursona from your photo", "Sticker"]
    subject = chat.press(chat.button(listing, "Sticker"), message=listing, contains="Subject")
    assert "reply" in subject.text
    style = chat.say("a happy otter", contains="Style")
    assert [b["text"] for b in style.buttons()] == ["Cartoon", "Kawaii", "Flat vector", "Pixel art"]
    seen = chat.seen()
    telegram.press_button(chat.id, chat.button(style, "Kawaii"), message=style)
    photo = wait_photo(telegram, chat, seen)
    assert [b["text"] for b in photo.buttons()][:2] == ["Regenerate", "Vary"]
    assert photo.text == ""  # the sticker asks for no words
    db.expire_all()
    message = db.scalars(sa.select(Message)).one()
    assert message.mode == Mode.TEXT_TO_IMAGE and message.resolution == "square"
    assert "A die-cut sticker of a happy otter in a Kawaii style" in message.prompt
    run = db.scalars(sa.select(TemplateRun)).one()
    assert run.inputs == {"subject": "a happy otter", "style": "Kawaii"}
    # The form is over: a text now is an ordinary prompt.
    seen = chat.seen()
    telegram.send_text(chat.id, "a lighthouse")
    wait_photo(telegram, chat, seen)
    db.expire_all()
    assert db.scalar(sa.select(sa.func.count()).select_from(TemplateRun)) == 1


def test_a_fursona_from_a_photo_in_russian_with_the_models_words_under_it(
    bot, worker, telegram, chat, db, make_cycle
):
    found = paying(chat, db, make_cycle)
    found.language = found.user.language = "ru"
    db.commit()
    listing = chat.say("/templates", contains="шаблон")
    ask_photo = chat.press(
        chat.button(listing, "Фурсона по вашему фото"), message=listing, contains="Ваше фото"
    )
    assert not ask_photo.buttons()  # required: no Skip
    seen = chat.seen()
    telegram.send_photo(chat.id, png("orange"))
    species = telegram.wait_for_message(chat.id, after=seen, contains="Животное")
    assert [b["text"] for b in species.buttons()][:2] == ["Лиса", "Волк"]
    chat.press(chat.button(species, "Лиса"), message=species, contains="Цвета")
    seen = chat.seen()
    telegram.send_text(chat.id, "рыжий и белый")
    photo = wait_photo(telegram, chat, seen)
    assert photo.text.startswith("Meet ")  # the model's words, as the photo's caption
    db.expire_all()
    message = db.scalars(sa.select(Message)).one()
    assert message.mode == Mode.IMAGE_TO_IMAGE and len(message.input_upload_ids) == 1
    assert "anthropomorphic Fox character" in message.prompt  # the English value
    assert "with рыжий и белый fur" in message.prompt
    run = db.scalars(sa.select(TemplateRun)).one()
    assert run.text == photo.text
    assert run.inputs["photo"] == str(message.input_upload_ids[0])
    # Regenerate asks for the words again.
    seen = chat.seen()
    telegram.press_button(chat.id, chat.button(photo, "Создать заново"), message=photo)
    again = wait_photo(telegram, chat, seen)
    assert again.text.startswith("Meet ")


def test_forged_and_stale_buttons_and_answers_that_do_not_fit_change_nothing(
    bot, telegram, chat, db
):
    chat.say("/start", contains="Welcome")
    listing = chat.say("/templates", contains="Choose a template")
    fursona = chat.button(listing, "Fursona")
    sticker = chat.button(listing, "Sticker")
    chat.press(fursona, message=listing, contains="Your photo: send a photo")
    # A file the upload checks refuse: named, and the form still waits for the photo.
    refused = answer(chat, lambda: telegram.send_photo(chat.id, b"not a picture"))
    assert refused.startswith("Your photo: ") and "image" in refused.lower()
    assert "Your photo: send a photo" in answer(chat, lambda: telegram.send_text(chat.id, "hi"))
    assert nothing_made(db)

    chat.press(sticker, message=listing, contains="Subject")  # a new form
    long = answer(chat, lambda: telegram.send_text(chat.id, "x" * 301))
    assert long == "Subject: at most 300 characters; send a shorter answer."
    photo = answer(chat, lambda: telegram.send_photo(chat.id, png()))
    assert photo == "Subject: reply with text."
    style = chat.say("  a fox  ", contains="Style")
    wrong = answer(chat, lambda: telegram.send_text(chat.id, "Gothic"))
    assert wrong.startswith("Style: choose one of the buttons (Cartoon, Kawaii")
    # A forged button says so, and the form says what it waits for.
    forged = answer(chat, lambda: telegram.press_button(chat.id, "f:000000:1:0|0000000000000000"))
    assert forged == "That button is not for this question. The form is waiting for: Style."
    assert telegram.callback_answers[-1].get("text") == "This button does not work any more."
    # Another user's button does nothing to either form.
    eve = Chat(telegram, 7002, "eve")
    eve.say("/start", contains="Welcome")
    telegram.press_button(eve.id, chat.button(style, "Kawaii"), message=style)
    # A stale button: the first form's, after it was closed.
    closed = chat.say("/cancel", contains="closed")
    assert closed.text == "The template form is closed; nothing was made."
    assert chat.press(chat.button(style, "Kawaii"), contains="closed").text.startswith(
        "This form is closed"
    )
    chat.press(sticker, message=listing, contains="Subject")
    chat.say("a fox", contains="Style")
    stale = answer(chat, lambda: telegram.press_button(chat.id, chat.button(style, "Kawaii")))
    assert stale == "That button is not for this question. The form is waiting for: Style."
    assert nothing_made(db)
    # A typed option is taken too; without a plan the web's own refusal follows.
    seen = chat.seen()
    telegram.send_text(chat.id, "kawaii")
    said = telegram.wait_for(chat.id, method="editMessageText", after=seen).text
    assert "plan" in said.lower() or "units" in said.lower()
    assert nothing_made(db)
    assert customer(db, eve.id) is not None


def answer(chat: Chat, send) -> str:
    seen = chat.seen()
    send()
    return chat.telegram.wait_for_message(chat.id, after=seen).text


def test_a_typed_answer_fits_its_field_or_names_it():
    select = Question(
        "style", "select", "Стиль", True, ("Cartoon", "Pixel art"), ("Мульт", "Пиксели")
    )
    assert typed_answer(select, " пиксели ", "ru") == "Pixel art"
    assert typed_answer(select, "cartoon", "ru") == "Cartoon"
    text = Question("colours", "text", "Colours", False)
    assert typed_answer(text, "  red  ", "en") == "red"
    for question, typed, key in (
        (select, "Gothic", "form_pick_option"),
        (text, "y" * 301, "form_too_long"),
        (text, "   ", "form_want_text"),
        (Question("photo", "image", "Your photo", True), "a photo", "form_want_photo"),
    ):
        try:
            typed_answer(question, typed, "en")
        except Refused as refusal:
            assert refusal.key == key
            assert refusal.values["label"].startswith(question.label)
        else:
            raise AssertionError(f"{typed!r} was taken for {question.name}")
    try:
        typed_answer(text, "", "en")
    except Refused as refusal:
        assert refusal.values["label"] == "Colours (optional)"


def test_unfinished_forms_are_kept_per_chat_for_a_while_and_in_bounded_number():
    now = [0.0]
    forms = Forms(lifetime=60, limit=2, clock=lambda: now[0])

    def form() -> Form:
        return Form("sticker", "Sticker", (), "en")

    first = forms.start(1, form())
    assert forms.get(1) is first and forms.get(2) is None
    now[0] = 30
    forms.start(2, form())
    forms.start(3, form())  # past the limit: the oldest goes
    assert forms.get(1) is None and len(forms) == 2
    now[0] = 89
    third = forms.get(3)
    assert forms.get(2) is not None and third is not None
    forms.touch(third)  # an answer keeps a form open for another lifetime
    now[0] = 95
    assert forms.get(2) is None and forms.get(3) is third
    assert forms.drop(3) is third and forms.get(3) is None and len(forms) == 0
