"""/start ref_CODE records who invited a new Telegram account; /invite shows the link."""

from __future__ import annotations

import sqlalchemy as sa

from customerbot.conftest import BOT_USERNAME, Chat, customer
from nproxy_core.referrals import services as referrals
from nproxy_core.referrals.models import Referral


def test_a_referral_link_records_the_referrer_once(bot, telegram, chat, db, user_factory):
    friend = user_factory("friend@example.com")
    code = referrals.code_for(db, friend.id)
    db.commit()
    answer = chat.say(f"/start ref_{code}", contains="Welcome")
    assert answer.text
    new = customer(db, chat.id).user_id
    row = db.get(Referral, new)
    assert row is not None and row.referrer_id == friend.id
    # Again: an existing account is not re-referred.
    other = user_factory("other@example.com")
    other_code = referrals.code_for(db, other.id)
    db.commit()
    chat.say(f"/start ref_{other_code}", contains="Welcome back")
    db.expire_all()
    assert db.get(Referral, new).referrer_id == friend.id
    # An unknown code still makes the account, with no referrer.
    eve = Chat(telegram, 7301, "eve")
    eve.say("/start ref_ZZZZZZZZ", contains="Welcome")
    assert db.get(Referral, customer(db, 7301).user_id) is None
    invite = chat.say("/invite").text
    mine = referrals.code_for(db, new)
    assert f"https://t.me/{BOT_USERNAME}?start=ref_{mine}" in invite
    assert db.scalar(sa.select(sa.func.count()).select_from(Referral)) == 1
