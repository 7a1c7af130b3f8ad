"""A generation that fails is said in the customer's language in the bot too: the message the
product stores in English for the failure is read from the same catalogs as the web's."""

from __future__ import annotations

import sqlalchemy as sa

from customerbot.conftest import customer
from nproxy_core.audit import Actor, Surface
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.models import ProviderKey


def test_a_failed_image_is_explained_in_russian(bot, worker, telegram, chat, db, make_cycle):
    chat.say("/start", contains="Welcome")
    found = customer(db, chat.id)
    make_cycle(found.user, request_limit=300)
    found.language = "ru"
    found.user.language = "ru"
    db.commit()
    # No key left in service: the image cannot be made (provider_unavailable).
    for key_id in db.scalars(sa.select(ProviderKey.id)).all():
        pool.disable_key(db, key_id, actor=Actor("tests", Surface.CLI))
    db.commit()
    seen = chat.seen()
    telegram.send_text(chat.id, "a red fox in the snow")
    said = telegram.wait_for_message(
        chat.id, after=seen, contains="Создание изображений временно недоступно", timeout=60
    )
    assert "temporarily" not in said.text
