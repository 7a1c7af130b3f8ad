"""The rules of a stateful alert (DESIGN 4.8), on the database and Telegram's outbox, nothing
sent: one message per admin when it opens, repeats counted and not sent within the dedup
window, one message naming them after it, "resolved" once when it clears, a new alert after
that."""

from __future__ import annotations

import datetime as dt
from functools import partial

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.alerts import services
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.telegram.alerts import TelegramAlerts
from nproxy_core.telegram.models import AlertMessage, TelegramAdmin

T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
WINDOW = dt.timedelta(seconds=900)
KIND, SUBJECT = "key_manual_review", "nanobanana key 3"
#: Telegram's outbox is where these rules show: one message per paired admin.
TELEGRAM = (TelegramAlerts(wake=lambda: None),)
raise_in = partial(services.raise_in, senders=TELEGRAM)
resolve_in = partial(services.resolve_in, senders=TELEGRAM)


@pytest.fixture
def admins(db: Session) -> list[int]:
    for chat in (11, 12):
        db.add(TelegramAdmin(telegram_id=chat, chat_id=chat, paired_by="tests"))
    db.flush()
    return [11, 12]


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def outbox(db: Session) -> list[tuple[int, str]]:
    return [
        (m.chat_id, m.text) for m in db.scalars(sa.select(AlertMessage).order_by(AlertMessage.id))
    ]


def test_an_alert_is_sent_once_per_window_with_its_repeats_counted(db, admins):
    assert raise_in(db, KIND, SUBJECT, "rejected", WINDOW, at(0)) == 2
    for n in range(1, 6):
        assert raise_in(db, KIND, SUBJECT, f"rejected again {n}", WINDOW, at(n * 60)) == 0
    assert len(outbox(db)) == 2
    # Just before the window ends: still quiet. At its end: one message naming the repeats.
    assert raise_in(db, KIND, SUBJECT, "still", WINDOW, at(899)) == 0
    assert raise_in(db, KIND, SUBJECT, "still rejected", WINDOW, at(900)) == 2
    later = [text for _, text in outbox(db)[2:]]
    assert all("still open" in t and "seen 7 more times" in t and "8 in all" in t for t in later)
    alert = db.scalars(sa.select(Alert)).one()
    assert (alert.count, alert.sent_count, alert.state) == (8, 8, AlertState.OPEN)


def test_resolving_says_so_once_and_a_new_occurrence_is_a_new_alert(db, admins):
    raise_in(db, KIND, SUBJECT, "rejected", WINDOW, at(0))
    assert resolve_in(db, KIND, SUBJECT, "restored by ops", at(10)) == 2
    assert resolve_in(db, KIND, SUBJECT, "restored again", at(11)) == 0  # nothing open
    texts = [text for _, text in outbox(db)]
    assert texts[2].startswith("✅ Resolved") and "restored by ops" in texts[2]
    # Within what was the window: a new occurrence is news again.
    assert raise_in(db, KIND, SUBJECT, "rejected anew", WINDOW, at(20)) == 2
    states = db.scalars(sa.select(Alert.state).order_by(Alert.id)).all()
    assert states == [AlertState.RESOLVED, AlertState.OPEN]


def test_alerts_of_another_subject_or_kind_are_their_own(db, admins):
    raise_in(db, KIND, SUBJECT, "rejected", WINDOW, at(0))
    assert raise_in(db, KIND, "nanobanana key 4", "rejected", WINDOW, at(1)) == 2
    assert raise_in(db, "key_out_of_funds", SUBJECT, "funds", WINDOW, at(2)) == 2


def test_an_alert_nobody_was_told_about_resolves_quietly_and_repeats_reach_new_admins(db):
    raise_in(db, KIND, SUBJECT, "rejected", WINDOW, at(0))  # no admin paired yet
    db.add(TelegramAdmin(telegram_id=11, chat_id=11, paired_by="tests"))
    db.flush()
    # A repeat, even within the window, is the first the new admin hears of it.
    assert raise_in(db, KIND, SUBJECT, "rejected again", WINDOW, at(3)) == 1
    db.execute(sa.delete(TelegramAdmin))
    raise_in(db, KIND, "nanobanana key 9", "rejected", WINDOW, at(4))
    assert resolve_in(db, KIND, "nanobanana key 9", "", at(5)) == 0
    quiet = db.scalars(sa.select(Alert).where(Alert.subject == "nanobanana key 9")).one()
    assert quiet.state == AlertState.RESOLVED
