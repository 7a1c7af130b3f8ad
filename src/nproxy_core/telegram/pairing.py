"""Pairing a Telegram account with the admin bot (DESIGN 4.8), and ending that access.

A user not on the allowlist gets an 8-character code; an operator confirms it on the server
console (``nproxy pair CODE``), which puts the Telegram id on the allowlist. Codes are single
use and expire after an hour; asking again while a code is valid gives the same code, so a
user pressing /start twice never invalidates what they already copied.

The bot is open to anyone on Telegram, so strangers must not be able to keep the operator
out. A cap that refuses new askers (the old "10 pending codes at once", or any global number
of codes per hour) is exactly the lever for that: whoever fills it first keeps everyone else
out for as long as they keep asking. So nothing global ever refuses:

- the pool holds :data:`MAX_PENDING` valid codes; when it is full, a new asker still gets a
  code and an older one is given up (:func:`_evict`): the oldest code of whoever asked most
  today, so a stranger asking again and again pushes out their own kind first, and an
  operator who asked once goes last;
- each Telegram account holds one valid code and gets at most :data:`MAX_CODES_PER_DAY` new
  ones a day (codes given up or cleared count too), so a flood needs fresh accounts: to push
  the operator's code out in the minute between asking and typing ``nproxy pair``, it must
  bring :data:`MAX_PENDING` new accounts in that minute, every minute the operator might try;
- codes that were never used are kept a day (:data:`KEEP_UNUSED`) for that count, then purged.

Limits alone could not promise the operator a code; eviction does (the newest asker always
gets one, unless that very account asked too often today), and the per-account limit is what
makes eviction costly to abuse. ``nproxy telegram pending`` shows who is asking and
``nproxy telegram clear`` (or the button on ``/admin/telegram``) drops every pending code.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.accounts.models import User
from nproxy_core.accounts.schemas import normalize_email
from nproxy_core.audit import Actor
from nproxy_core.db import utcnow
from nproxy_core.errors import Conflict, NotFound, ValidationError
from nproxy_core.telegram.models import TelegramAdmin, TelegramPairing

__all__ = ["Asker", "PairingRefused", "TelegramAdmin", "TelegramPairing"]

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_TTL = dt.timedelta(hours=1)
#: Valid codes at once; when full, a new asker pushes an older code out (see above).
MAX_PENDING = 100
#: New codes one Telegram account may get in a day (:data:`KEEP_UNUSED`).
MAX_CODES_PER_DAY = 5
#: Unused codes are kept this long after they were given, for the per-account count.
KEEP_UNUSED = dt.timedelta(days=1)


@dataclass(frozen=True)
class Asker:
    """Who writes to the bot, from the Telegram update (names are the user's own, untrusted)."""

    telegram_id: int
    chat_id: int
    username: str | None
    name: str | None


class PairingRefused(Conflict):
    """The code cannot be used (unknown, expired or used); the message says which."""


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def is_allowed(db: Session, telegram_id: int) -> bool:
    return (
        db.scalar(sa.select(TelegramAdmin.id).where(TelegramAdmin.telegram_id == telegram_id))
        is not None
    )


def allowed_admin(db: Session, telegram_id: int) -> TelegramAdmin | None:
    return db.scalar(sa.select(TelegramAdmin).where(TelegramAdmin.telegram_id == telegram_id))


def pending(db: Session, now: dt.datetime | None = None) -> list[TelegramPairing]:
    now = now or utcnow()
    return list(
        db.scalars(
            sa.select(TelegramPairing)
            .where(TelegramPairing.completed_at.is_(None), TelegramPairing.expires_at > now)
            .order_by(TelegramPairing.id)
        )
    )


def _lock(db: Session) -> None:
    if db.get_bind().dialect.name == "postgresql":
        # Counting then inserting or evicting must not interleave with another caller's.
        db.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('telegram_pairings'))"))


def _purge(db: Session, now: dt.datetime) -> None:
    """Unused codes older than :data:`KEEP_UNUSED` go: no count needs them any more."""
    db.execute(
        sa.delete(TelegramPairing).where(
            TelegramPairing.completed_at.is_(None),
            TelegramPairing.created_at <= now - KEEP_UNUSED,
        )
    )


def _asked_today(db: Session, now: dt.datetime) -> dict[int, int]:
    """New codes given to each Telegram account in the last day (unused ones)."""
    rows = db.execute(
        sa.select(TelegramPairing.telegram_id, sa.func.count())
        .where(
            TelegramPairing.completed_at.is_(None),
            TelegramPairing.created_at > now - KEEP_UNUSED,
        )
        .group_by(TelegramPairing.telegram_id)
    )
    return {telegram_id: count for telegram_id, count in rows}


def _evict(waiting: list[TelegramPairing], asked: dict[int, int], now: dt.datetime) -> None:
    """Make room for one more code: give up the oldest code of whoever asked most today."""
    keep = MAX_PENDING - 1
    if len(waiting) <= keep:
        return
    order = sorted(waiting, key=lambda p: (-asked.get(p.telegram_id, 0), p.created_at, p.id))
    for pairing in order[: len(waiting) - keep]:
        pairing.expires_at = now  # no longer valid; still counted for its asker today


def code_for(db: Session, asker: Asker, now: dt.datetime | None = None) -> str | None:
    """The pairing code for this Telegram user: their valid one, or a new one; None when
    this account was given :data:`MAX_CODES_PER_DAY` codes in the last day already."""
    now = now or utcnow()
    _lock(db)
    _purge(db, now)
    waiting = pending(db, now)
    for pairing in waiting:
        if pairing.telegram_id == asker.telegram_id:
            return pairing.code
    asked = _asked_today(db, now)
    if asked.get(asker.telegram_id, 0) >= MAX_CODES_PER_DAY:
        return None
    _evict(waiting, asked, now)
    while True:
        code = new_code()
        if db.scalar(sa.select(TelegramPairing.id).where(TelegramPairing.code == code)) is None:
            break
    db.add(
        TelegramPairing(
            code=code,
            telegram_id=asker.telegram_id,
            chat_id=asker.chat_id,
            username=_clip(asker.username, 64),
            name=_clip(asker.name, 200),
            created_at=now,
            expires_at=now + CODE_TTL,
        )
    )
    db.flush()
    return code


def clear(db: Session, *, actor: Actor, now: dt.datetime | None = None) -> int:
    """Drop every pending code (shared by the console and the web admin, audited); their
    askers may ask again, within their daily limit. Returns how many were dropped."""
    now = now or utcnow()
    _lock(db)
    waiting = pending(db, now)
    for pairing in waiting:
        pairing.expires_at = now
    db.flush()
    actor.record(
        db,
        "telegram.clear_pending",
        "telegram_pairing",
        None,
        {"pending": len(waiting), "telegram_ids": [p.telegram_id for p in waiting]},
        {"pending": 0},
    )
    return len(waiting)


def normalize_code(value: str) -> str:
    code = value.strip().upper().replace("-", "").replace(" ", "")
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        raise ValidationError(
            f"a pairing code is {CODE_LENGTH} characters from {ALPHABET}; got {value[:20]!r}"
        )
    return code


def find_pairing(db: Session, code: str, now: dt.datetime | None = None) -> TelegramPairing:
    """The pairing a valid code belongs to; :class:`PairingRefused` saying why otherwise."""
    now = now or utcnow()
    pairing = db.scalar(
        sa.select(TelegramPairing)
        .where(TelegramPairing.code == normalize_code(code))
        .with_for_update()
    )
    if pairing is None:
        raise PairingRefused("unknown pairing code")
    if pairing.completed_at is not None:
        raise PairingRefused("this pairing code was already used")
    if pairing.expires_at <= now:
        raise PairingRefused("this pairing code has expired; ask the bot for a new one")
    return pairing


def _admin_user(db: Session, email: str) -> User:
    user = db.scalar(sa.select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise NotFound(f"no account with the email {email[:80]!r}")
    if not user.is_admin:
        raise ValidationError(f"{user.email} is not an admin account")
    return user


def complete(
    db: Session,
    code: str,
    *,
    actor: Actor,
    as_email: str | None = None,
    now: dt.datetime | None = None,
) -> TelegramAdmin:
    """Put the code's Telegram user on the allowlist (linked to ``as_email``), audited: the
    row names the operator who paired and, in ``after``, the Telegram user and the account."""
    now = now or utcnow()
    user = _admin_user(db, as_email) if as_email else None
    pairing = find_pairing(db, code, now)
    admin = allowed_admin(db, pairing.telegram_id)
    if admin is None:
        admin = TelegramAdmin(telegram_id=pairing.telegram_id)
        db.add(admin)
    admin.chat_id = pairing.chat_id
    admin.username = pairing.username
    admin.name = pairing.name
    admin.user_id = user.id if user is not None else None
    admin.paired_at = now
    admin.paired_by = actor.name[:320]
    pairing.completed_at = now
    db.flush()
    actor.record(
        db,
        "telegram.pair",
        "telegram_admin",
        pairing.telegram_id,
        None,
        describe(pairing) | {"user_id": admin.user_id, "email": user.email if user else None},
    )
    return admin


def describe(admin: TelegramAdmin | TelegramPairing) -> dict[str, object]:
    return {"telegram_id": admin.telegram_id, "username": admin.username, "name": admin.name}


def revoke(db: Session, telegram_id: int, *, actor: Actor) -> TelegramAdmin:
    """End a Telegram admin's access (shared by the console and the web admin, audited); they
    are back to asking for a pairing code. Returns the deleted row."""
    admin = db.scalar(
        sa.select(TelegramAdmin).where(TelegramAdmin.telegram_id == telegram_id).with_for_update()
    )
    if admin is None:
        raise NotFound(f"Telegram id {telegram_id} is not a paired admin")
    before = describe(admin) | {"user_id": admin.user_id}
    db.delete(admin)
    db.flush()
    actor.record(db, "telegram.revoke", "telegram_admin", telegram_id, before, None)
    return admin


def admins(db: Session) -> list[TelegramAdmin]:
    return list(db.scalars(sa.select(TelegramAdmin).order_by(TelegramAdmin.id)))


def to_notify(db: Session) -> list[TelegramPairing]:
    """Completed pairings whose user was not told yet (the bot tells them, then marks them)."""
    return list(
        db.scalars(
            sa.select(TelegramPairing)
            .where(TelegramPairing.completed_at.is_not(None), TelegramPairing.notified_at.is_(None))
            .order_by(TelegramPairing.id)
        )
    )
