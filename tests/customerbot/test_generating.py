"""Generating in Telegram with a real worker: text to image delivered as a photo with buttons,
Regenerate, Vary, Original file, a photo or an album with a caption as image-to-image, the
web's quota messages, and results that survive 429s and a restart of the bot process."""

from __future__ import annotations

import io
import time

import sqlalchemy as sa
from PIL import Image

from customerbot.conftest import Chat, customer
from nproxy_core.customerbot import services
from nproxy_core.customerbot.models import TelegramDelivery
from nproxy_core.generation.models import TERMINAL, Generation, GenerationImage, Message
from nproxy_core.plugins import Mode
from nproxy_core.tasks import run_now


def png(color: str = "red", size: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, format="PNG")
    return out.getvalue()


def paying(chat: Chat, db, make_cycle, limit: int = 300):
    chat.say("/start", contains="Welcome")
    found = customer(db, chat.id)
    make_cycle(found.user, request_limit=limit)
    db.commit()
    return found


def wait_photo(telegram, chat: Chat, after: int, method: str = "sendPhoto"):
    try:
        return telegram.wait_for(chat.id, method=method, after=after, timeout=60)
    except AssertionError:
        said = [(m.method, m.text) for m in telegram.sent_to(chat.id)]
        raise AssertionError(f"no {method}: {said}") from None


def wait_latest_finished(db, timeout: float = 60) -> Generation:
    """Until the newest generation has ended (with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        db.expire_all()
        latest = db.scalar(sa.select(Generation).order_by(Generation.created_at.desc()).limit(1))
        if latest.status in TERMINAL:
            return latest
        assert time.monotonic() < deadline, latest.status
        time.sleep(0.1)


def test_a_text_makes_a_photo_with_buttons_then_regenerate_vary_and_original(
    bot, worker, telegram, chat, db, make_cycle
):
    user = paying(chat, db, make_cycle)
    seen = chat.seen()
    telegram.send_text(chat.id, "a red fox in the snow")
    photo = wait_photo(telegram, chat, seen)
    assert photo.photo and photo.photo[:4] in (b"\x89PNG", b"RIFF", b"\xff\xd8\xff\xe0")
    labels = [b["text"] for b in photo.buttons()]
    assert labels[:2] == ["Regenerate", "Vary"]
    assert "Original file" in labels
    # Progress: the chat action, then the one status message edited when done.
    assert any(a.get("action") == "upload_photo" for a in telegram.chat_actions)
    edited = telegram.wait_for(chat.id, method="editMessageText", after=seen)
    assert edited.text.startswith("Done")
    # The image is the account's: the web library has it.
    images = db.scalars(sa.select(GenerationImage).where(GenerationImage.user_id == user.user_id))
    assert len(images.all()) == 1

    seen = chat.seen()
    telegram.press_button(chat.id, chat.button(photo, "Regenerate"), message=photo)
    again = wait_photo(telegram, chat, seen)
    assert again.message_id != photo.message_id

    seen = chat.seen()
    telegram.press_button(chat.id, chat.button(photo, "Vary"), message=photo)
    wait_photo(telegram, chat, seen)
    db.expire_all()
    modes = db.scalars(sa.select(Message.mode).order_by(Message.created_at)).all()
    assert modes == [Mode.TEXT_TO_IMAGE, Mode.TEXT_TO_IMAGE, Mode.IMAGE_TO_IMAGE]

    seen = chat.seen()
    telegram.press_button(chat.id, chat.button(photo, "Original file"), message=photo)
    document = telegram.wait_for(chat.id, method="sendDocument", after=seen)
    stored = db.scalars(sa.select(GenerationImage).order_by(GenerationImage.created_at)).first()
    assert document.document and len(document.document) == stored.size_bytes


def test_a_photo_with_a_caption_and_an_album_make_image_to_image(
    bot, worker, telegram, chat, db, make_cycle
):
    paying(chat, db, make_cycle)
    seen = chat.seen()
    telegram.send_photo(chat.id, png("blue"), caption="make it a watercolour")
    wait_photo(telegram, chat, seen)
    message = db.scalars(sa.select(Message)).one()
    assert message.mode == Mode.IMAGE_TO_IMAGE and len(message.input_upload_ids) == 1
    assert message.prompt == "make it a watercolour"

    seen = chat.seen()
    telegram.send_photo(chat.id, png("green"), caption="blend these", media_group_id="g1")
    telegram.send_photo(chat.id, png("yellow"), media_group_id="g1")
    wait_photo(telegram, chat, seen)
    db.expire_all()
    album = db.scalars(sa.select(Message).where(Message.prompt == "blend these")).one()
    assert len(album.input_upload_ids) == 2


def test_a_batch_is_one_media_group(bot, worker, telegram, chat, db, make_cycle):
    found = paying(chat, db, make_cycle)
    found.batch_size = 3
    db.commit()
    seen = chat.seen()
    telegram.send_text(chat.id, "three cats")
    wait_photo(telegram, chat, seen, method="sendMediaGroup")
    buttons = telegram.wait_for_message(chat.id, after=seen, contains="Done: 3")
    assert [m.method for m in telegram.sent_to(chat.id)[seen:]].count("sendMediaGroup") == 3
    assert buttons.buttons()


def test_no_plan_gets_the_webs_own_message_and_nothing_is_held(bot, telegram, chat, db):
    chat.say("/start", contains="Welcome")
    seen = chat.seen()
    telegram.send_text(chat.id, "a cat")
    answer = telegram.wait_for(chat.id, method="editMessageText", after=seen)
    assert "plan" in answer.text.lower() or "units" in answer.text.lower()
    db.expire_all()
    assert db.scalar(sa.select(sa.func.count()).select_from(Generation)) == 0
    assert db.scalar(sa.select(sa.func.count()).select_from(TelegramDelivery)) == 0


def test_a_429_delays_a_result_and_a_restart_loses_none(
    start_bot, worker, telegram, chat, db, make_cycle, processes, make_app, bot_settings
):
    first = start_bot(process=True)  # the real ``nproxy bot`` process, restarted below
    found = paying(chat, db, make_cycle)
    telegram.rate_limit_media(retry_after=1, times=2)
    seen = chat.seen()
    telegram.send_text(chat.id, "a lighthouse")
    wait_photo(telegram, chat, seen)
    assert telegram.refused >= 2
    deadline = time.monotonic() + 30
    while True:
        db.expire_all()
        delivery = db.scalars(sa.select(TelegramDelivery)).one()
        if delivery.sent_at is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert delivery.sent_at is not None and delivery.attempts == 2

    # The bot process stops; a result finished meanwhile is sent once it is back.
    first.stop()
    processes.remove(first)
    app = make_app(**{k.replace(".", "__"): v for k, v in bot_settings.items()})

    def submit(request):
        services.submit(request, services.customer_of(request.db, found.user_id), "a boat")

    run_now(app.app.registry, submit)
    wait_latest_finished(db)
    seen = chat.seen()
    start_bot(process=True)
    wait_photo(telegram, chat, seen)
    db.expire_all()
    unsent = sa.select(sa.func.count()).select_from(TelegramDelivery)
    unsent = unsent.where(TelegramDelivery.sent_at.is_(None))
    deadline = time.monotonic() + 30
    while db.scalar(unsent) and time.monotonic() < deadline:
        time.sleep(0.05)
        db.expire_all()
    assert db.scalar(unsent) == 0


def test_a_linked_web_account_sees_its_telegram_images_and_gets_a_larger_size(
    bot, worker, telegram, db, make_app, user_factory, bot_settings, make_cycle
):
    from customerbot.test_accounts import _link_from_dashboard

    app, user, payload = _link_from_dashboard(make_app, user_factory, bot_settings)
    make_cycle(user, request_limit=300)
    db.commit()
    chat = Chat(telegram, 6101, "web")
    chat.say(f"/start {payload}", contains="linked")
    found = customer(db, chat.id)
    found.provider, found.model, found.resolution = "demo", "demo-pro", "square"
    db.commit()
    seen = chat.seen()
    telegram.send_text(chat.id, "a castle")
    photo = wait_photo(telegram, chat, seen)
    larger = chat.button(photo, "Larger")
    assert "square_2k" in [b["text"] for b in photo.buttons()][2]
    seen = chat.seen()
    telegram.press_button(chat.id, larger, message=photo)
    wait_photo(telegram, chat, seen)
    db.expire_all()
    bigger = db.scalars(sa.select(Message).where(Message.resolution == "square_2k")).one()
    assert bigger.mode == Mode.IMAGE_TO_IMAGE
    library = app.get("/api/v1/images").json
    assert len(library["images"]) == 2


def test_an_outage_delays_a_result_then_history_lists_it(
    bot, worker, telegram, chat, db, make_cycle
):
    paying(chat, db, make_cycle)
    seen = chat.seen()
    telegram.send_text(chat.id, "an orchard in bloom")
    telegram.wait_for_message(chat.id, after=seen, contains="Working")
    telegram.down = True
    deadline = time.monotonic() + 60
    while True:
        db.expire_all()
        row = db.scalars(sa.select(TelegramDelivery)).first()
        if row is not None and row.attempts >= 1:
            break
        assert time.monotonic() < deadline, "the delivery was never tried"
        time.sleep(0.1)
    assert row.sent_at is None and row.last_error
    telegram.down = False
    wait_photo(telegram, chat, seen)
    history = chat.say("/history", contains="orchard")
    assert history.buttons()[0]["text"].startswith("Original file")


def test_a_result_that_cannot_be_read_is_given_up_with_a_message(
    start_bot, worker, telegram, chat, db, make_cycle, processes, make_app, bot_settings
):
    from nproxy_core.customerbot.bot import MAX_ATTEMPTS
    from nproxy_core.storage import IStorage
    from nproxy_core.wiring import find_service

    first = start_bot()
    found = paying(chat, db, make_cycle)
    first.stop()
    processes.remove(first)
    app = make_app(**{k.replace(".", "__"): v for k, v in bot_settings.items()})
    registry = app.app.registry

    def submit(request):
        services.submit(request, services.customer_of(request.db, found.user_id), "a mill")

    run_now(registry, submit)
    wait_latest_finished(db)
    image = db.scalars(sa.select(GenerationImage)).one()
    find_service(registry, IStorage).delete(image.storage_key)  # gone from storage
    db.execute(sa.update(TelegramDelivery).values(attempts=MAX_ATTEMPTS))
    db.commit()
    seen = chat.seen()
    start_bot()
    telegram.wait_for_message(chat.id, after=seen, contains="went wrong")
    deadline = time.monotonic() + 30
    while db.scalars(sa.select(TelegramDelivery)).one().sent_at is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        db.expire_all()


def test_a_429_on_the_status_message_sends_no_result_twice(
    bot, worker, telegram, chat, db, make_cycle
):
    found = paying(chat, db, make_cycle)

    def delivered(prompt: str, method: str) -> list[str]:
        seen = chat.seen()
        telegram.rate_limit_edits(retry_after=1)
        telegram.send_text(chat.id, prompt)
        wait_photo(telegram, chat, seen, method=method)
        deadline = time.monotonic() + 30
        while db.scalar(sa.select(sa.func.count()).where(TelegramDelivery.sent_at.is_(None))):
            assert time.monotonic() < deadline, "the delivery was never marked sent"
            time.sleep(0.05)
            db.expire_all()
        return [m.method for m in telegram.sent_to(chat.id)[seen:]]

    refused = telegram.refused
    sent = delivered("an owl at night", "sendPhoto")
    assert telegram.refused == refused + 1 and sent.count("sendPhoto") == 1
    found.batch_size = 2
    db.commit()
    sent = delivered("two owls", "sendMediaGroup")
    assert telegram.refused == refused + 2 and sent.count("sendMediaGroup") == 2  # one album
    done = [m for m in telegram.sent_to(chat.id) if m.text.startswith("Done: 2")][-1]
    assert [b["text"] for b in done.buttons()][:2] == ["Regenerate", "Vary"]
