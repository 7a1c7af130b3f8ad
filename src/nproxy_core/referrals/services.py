"""Referral codes and links, recording who referred a new account, and the referrer's reward
(DESIGN 4.14).

- Every account has a code: 8 characters from an alphabet without look-alikes (no 0/O/1/I),
  made on first use. Links: ``https://t.me/{bot}?start=ref_{code}`` and
  ``{public_url}/r/{code}``.
- A new account records its referrer once: never itself, never an account that existed before
  (older than :data:`NEW_ACCOUNT_WINDOW`, or one that has paid), never changed later.
- When a referred account's first paid payment activates (any processor: billing calls
  :func:`reward_for_activation` from its one activation path), the referrer gets
  ``nproxy.referral.reward_units`` as a pack balance valid 12 months: once per referred
  account, idempotent by payment. A refund of that payment takes back what is unused
  (:func:`claw_back_for_refund`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nproxy_core.accounts.models import User
from nproxy_core.audit import SYSTEM
from nproxy_core.billing.cycles import add_months
from nproxy_core.billing.models import (
    BalanceSource,
    BillingCycle,
    PackBalance,
    Payment,
    PaymentState,
)
from nproxy_core.billing.packs import grant_pack
from nproxy_core.db import utcnow
from nproxy_core.plugins import non_negative_int, setting
from nproxy_core.referrals.models import Referral, ReferralCode, ReferralReward

log = logging.getLogger(__name__)

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
DEFAULT_REWARD_UNITS = 20
REWARD_VALID_MONTHS = 12
#: How new an account must be to record who referred it.
NEW_ACCOUNT_WINDOW = dt.timedelta(hours=1)
_CODE = re.compile(f"[{ALPHABET}]{{{CODE_LENGTH}}}")
REWARD_LABEL = "Referral reward"


#: The setting of the units a referrer gets (DESIGN section 3).
REWARD_SETTING = "nproxy.referral.reward_units"


def reward_units(settings: Any) -> int:
    """``nproxy.referral.reward_units`` (default 20; 0 turns rewards off)."""
    return setting(settings, REWARD_SETTING, default=DEFAULT_REWARD_UNITS, cast=non_negative_int)


class ReferralRefused(ValueError):
    """A referral that is not recorded, with the reason a person can read."""


def normalize_code(code: Any) -> str | None:
    """The code as stored (upper case, trimmed, a ``ref_`` prefix dropped), or None when it
    cannot be one."""
    if not isinstance(code, str):
        return None
    text = code.strip()
    if text.lower().startswith("ref_"):
        text = text[4:]
    text = text.upper()
    return text if _CODE.fullmatch(text) else None


def code_for(db: Session, user_id: int) -> str:
    """The account's referral code, made on first use (two first uses at once agree)."""
    found = db.scalar(sa.select(ReferralCode.code).where(ReferralCode.user_id == user_id))
    if found is not None:
        return found
    for _ in range(8):
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        try:
            with db.begin_nested():
                db.add(ReferralCode(user_id=user_id, code=code))
        except IntegrityError:
            found = db.scalar(sa.select(ReferralCode.code).where(ReferralCode.user_id == user_id))
            if found is not None:
                return found
            continue  # the code was someone else's: draw another
        return code
    raise RuntimeError("could not draw a free referral code")


def referrer_of_code(db: Session, code: Any) -> int | None:
    normal = normalize_code(code)
    if normal is None:
        return None
    return db.scalar(sa.select(ReferralCode.user_id).where(ReferralCode.code == normal))


def links(code: str, *, public_url: str, bot_username: str | None) -> dict[str, str | None]:
    """The account's two links (Telegram's only when the customers' bot has a username)."""
    bot = (bot_username or "").strip().lstrip("@")
    return {
        "code": code,
        "web": f"{public_url.rstrip('/')}/r/{code}",
        "telegram": f"https://t.me/{bot}?start=ref_{code}" if bot else None,
    }


def record_referral(
    db: Session,
    new_user_id: int,
    code: Any,
    *,
    via: str = "telegram",
    now: dt.datetime | None = None,
) -> Referral:
    """Record that the account ``new_user_id`` came through ``code``.

    Raises :class:`ReferralRefused` (nothing written) for an unknown code, the account's own
    code, an account that is not new (made more than :data:`NEW_ACCOUNT_WINDOW` ago, or one
    that has paid or had a cycle) and an account that already has its referrer.
    """
    now = now or utcnow()
    referrer_id = referrer_of_code(db, code)
    if referrer_id is None:
        raise ReferralRefused("This invitation code is unknown.")
    if referrer_id == new_user_id:
        raise ReferralRefused("You cannot invite yourself.")
    user = db.scalar(sa.select(User).where(User.id == new_user_id).with_for_update())
    if user is None:
        raise ReferralRefused("No such account.")
    if db.get(Referral, new_user_id) is not None:
        raise ReferralRefused("This account was already invited by someone.")
    created = user.created_at if user.created_at.tzinfo else user.created_at.replace(tzinfo=dt.UTC)
    paid = db.scalar(
        sa.select(Payment.id)
        .where(
            Payment.user_id == new_user_id,
            Payment.status.in_([PaymentState.FINISHED, PaymentState.REFUNDED]),
        )
        .limit(1)
    ) or db.scalar(sa.select(BillingCycle.id).where(BillingCycle.user_id == new_user_id).limit(1))
    if created + NEW_ACCOUNT_WINDOW < now or paid is not None:
        raise ReferralRefused("Invitations are only for new accounts.")
    referral = Referral(referred_id=new_user_id, referrer_id=referrer_id, via=via, created_at=now)
    try:
        with db.begin_nested():
            db.add(referral)
    except IntegrityError:
        raise ReferralRefused("This account was already invited by someone.") from None
    SYSTEM.record(
        db,
        "referral.recorded",
        "user",
        new_user_id,
        None,
        {"referrer_id": referrer_id, "via": via},
    )
    return referral


# --- rewards (called from billing's activation and refund paths) ----------------------------


def reward_for_activation(
    db: Session, payment: Payment, now: dt.datetime, *, units: int = DEFAULT_REWARD_UNITS
) -> ReferralReward | None:
    """The referrer's reward for a referred account's first paid payment, once.

    The referred account's referral row is locked first, so two payments of one account
    activating at once reward once; a payment already rewarded is found and left alone.
    """
    if payment.amount is None or payment.amount <= 0 or units <= 0:
        return None
    referral = db.scalar(
        sa.select(Referral).where(Referral.referred_id == payment.user_id).with_for_update()
    )
    if referral is None:
        return None
    existing = db.scalar(
        sa.select(ReferralReward)
        .where(ReferralReward.referred_id == payment.user_id)
        .execution_options(populate_existing=True)
    )
    if existing is not None:
        return existing
    balance = grant_pack(
        db,
        referral.referrer_id,
        units=units,
        label=REWARD_LABEL,
        expires_at=add_months(now, REWARD_VALID_MONTHS),
        source=BalanceSource.GRANT,
        now=now,
    )
    reward = ReferralReward(
        referrer_id=referral.referrer_id,
        referred_id=payment.user_id,
        payment_id=payment.id,
        balance_id=balance.id,
        units=units,
        created_at=now,
    )
    db.add(reward)
    db.flush()
    SYSTEM.record(
        db,
        "referral.rewarded",
        "user",
        referral.referrer_id,
        None,
        {
            "referred_id": payment.user_id,
            "payment_order_id": payment.order_id,
            "units": units,
            "balance_id": balance.id,
        },
    )
    return reward


def claw_back_for_refund(db: Session, payment: Payment, now: dt.datetime) -> ReferralReward | None:
    """A refunded payment that earned a reward takes back the reward's unused units."""
    reward = db.scalar(
        sa.select(ReferralReward)
        .where(ReferralReward.payment_id == payment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if reward is None or reward.clawed_back_at is not None:
        return reward
    reward.clawed_back_at = now
    left = 0
    if reward.balance_id is not None:
        balance = db.scalar(
            sa.select(PackBalance)
            .where(PackBalance.id == reward.balance_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if balance is not None and balance.revoked_at is None:
            left = balance.units - balance.used - balance.reserved
            balance.revoked_at = now
    db.flush()
    SYSTEM.record(
        db,
        "referral.reward_clawed_back",
        "user",
        reward.referrer_id,
        None,
        {
            "referred_id": reward.referred_id,
            "payment_order_id": payment.order_id,
            "units_taken_back": max(left, 0),
        },
    )
    return reward
