"""Many Telegram users at once: every result is delivered exactly once, each chat's results
in the order they were asked for, and commands keep being answered meanwhile."""

from __future__ import annotations

import sqlalchemy as sa

from customerbot.conftest import Chat, customer
from nproxy_core.customerbot.models import TelegramDelivery

USERS = 12


def test_every_result_once_and_in_order_per_chat(bot, worker, telegram, db, make_cycle):
    chats = [Chat(telegram, 8000 + n, f"u{n}") for n in range(USERS)]
    for chat in chats:
        chat.say("/start", contains="Welcome")
        make_cycle(customer(db, chat.id).user, request_limit=50)
    db.commit()
    starts = {chat.id: chat.seen() for chat in chats}
    for round_ in range(2):
        for chat in chats:
            telegram.send_text(chat.id, f"picture {round_} for {chat.id}")
    # A command in the middle of it all is answered.
    helper = Chat(telegram, 8999, "helper")
    assert "/balance" in helper.say("/help", contains="/balance").text
    for chat in chats:
        first = telegram.wait_for(chat.id, method="sendPhoto", after=starts[chat.id], timeout=90)
        after = telegram.sent_to(chat.id).index(first) + 1
        telegram.wait_for(chat.id, method="sendPhoto", after=after, timeout=90)
    db.expire_all()
    for chat in chats:
        photos = [m for m in telegram.sent_to(chat.id) if m.method == "sendPhoto"]
        assert len(photos) == 2, chat.id
        rows = db.scalars(
            sa.select(TelegramDelivery)
            .where(TelegramDelivery.chat_id == chat.id)
            .order_by(TelegramDelivery.id)
        ).all()
        assert len(rows) == 2
        # Delivered in the order asked: each photo's Regenerate names its generation.
        shown = [chat.button(p, "Regenerate").split("|")[0][2:] for p in photos]
        assert shown == [row.generation_id.hex for row in rows]
