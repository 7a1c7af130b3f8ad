"""Credit packs (DESIGN 4.12): the packs for sale, adding and editing them (audited, shared by
every surface), and the pack balances that a bought pack, an upgrade's leftover units or an
admin's grant give a user.

A pack is a row like a plan (``billing.plans`` holds the checks both share). Its units are a
balance of their own, valid ``valid_months`` calendar months from the purchase (the day clamped
like a cycle's end). The quota draws on the current cycle first, then on the balances.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.audit import SYSTEM, Actor
from nproxy_core.billing.cycles import add_months
from nproxy_core.billing.interfaces import IPacks
from nproxy_core.billing.models import BalanceSource, CreditPack, PackBalance, Payment
from nproxy_core.billing.plans import (
    _bad,
    add_row,
    by_code,
    edit_row,
    offer_json,
    row_view,
    to_buy,
)
from nproxy_core.billing.presenters import isoformat
from nproxy_core.db import utcnow

__all__ = [
    "FIELDS",
    "PackCatalog",
    "add_pack",
    "balance_of",
    "balance_view",
    "edit_pack",
    "grant_bought_pack",
    "grant_pack",
    "pack_json",
    "pack_view",
    "revoke_for_refund",
    "upgrade_leftover",
]

#: What ``nproxy packs add`` / ``edit`` may set.
FIELDS = (
    "name",
    "price",
    "currency",
    "price_stars",
    "units",
    "valid_months",
    "models",
    "public",
    "active",
    "translations",
)
#: The label of a balance is at most this long (the column's size).
LABEL_LIMIT = 100


@implementer(IPacks)
class PackCatalog:
    """Billing's credit packs service."""

    def get(self, db: Session, code: Any) -> CreditPack:
        return by_code(db, CreditPack, code)

    def for_sale(self, db: Session) -> list[CreditPack]:
        """The public, active packs, cheapest first: the pricing page and ``/api/v1/packs``."""
        return list(
            db.scalars(
                sa.select(CreditPack)
                .where(CreditPack.public.is_(True), CreditPack.active.is_(True))
                .order_by(CreditPack.price, CreditPack.id)
            )
        )

    def to_buy(self, db: Session, code: Any, processor: Any) -> CreditPack:
        """The pack a checkout names, or ValidationError naming it and why it cannot be
        bought with ``processor`` (unknown, no longer sold, no price in Stars)."""
        return to_buy(db, CreditPack, code, processor)


def pack_json(pack: CreditPack, per_image: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A pack as ``GET /api/v1/packs`` shows it: what it costs and buys."""
    return offer_json(
        pack,
        per_image,
        units=pack.units,
        valid_months=pack.valid_months,
        models=list(pack.models or []),
    )


def pack_view(pack: CreditPack) -> dict[str, Any]:
    """Every field of a pack: the audit rows and ``nproxy packs list --json``."""
    return row_view(pack, FIELDS)


def _check_whole(pack: CreditPack) -> None:
    if pack.price <= 0:
        raise _bad("price", "a credit pack needs a price above 0")


def add_pack(db: Session, code: Any, fields: Mapping[str, Any], *, actor: Actor) -> CreditPack:
    """Create a pack; ``fields`` holds :data:`FIELDS` (name, price, currency and units
    required; valid 12 months unless told). One audit row, ``pack.add``."""
    return add_row(
        db,
        CreditPack,
        code,
        {"valid_months": 12, **fields},
        allowed=FIELDS,
        required=("name", "price", "currency", "units"),
        check=_check_whole,
        view=pack_view,
        actor=actor,
    )


def edit_pack(db: Session, code: Any, changes: Mapping[str, Any], *, actor: Actor) -> CreditPack:
    """Change some fields of a pack; balances already bought keep their units and expiry.
    One audit row, ``pack.edit`` (none when nothing changed)."""
    return edit_row(
        db,
        CreditPack,
        code,
        changes,
        allowed=FIELDS,
        check=_check_whole,
        view=pack_view,
        actor=actor,
    )


# --- balances --------------------------------------------------------------------------------


def balance_view(balance: PackBalance) -> dict[str, Any]:
    """A balance as the audit rows keep it (exact: it is the user's own purchase)."""
    return {
        "balance_id": balance.id,
        "user_id": balance.user_id,
        "source": str(balance.source),
        "label": balance.label,
        "pack": balance.pack.code if balance.pack is not None else None,
        "units": balance.units,
        "used": balance.used,
        "reserved": balance.reserved,
        "models": list(balance.models or []),
        "starts_at": isoformat(balance.starts_at),
        "expires_at": isoformat(balance.expires_at),
        "payment_id": balance.payment_id,
        "revoked_at": isoformat(balance.revoked_at),
    }


def grant_pack(
    db: Session,
    user_id: int,
    *,
    units: int,
    label: str,
    expires_at: dt.datetime,
    source: BalanceSource,
    pack: CreditPack | None = None,
    payment: Payment | None = None,
    models: Iterable[str] = (),
    now: dt.datetime | None = None,
) -> PackBalance:
    """Give the user a balance of ``units`` until ``expires_at``.

    At most one balance per payment: a payment that has one gets it back unchanged (the
    unique ``pack_balances.payment_id`` backs this up when callers do not hold the payment's
    row lock).
    """
    if payment is not None:
        existing = balance_of(db, payment)
        if existing is not None:
            return existing
    balance = PackBalance(
        user_id=user_id,
        pack=pack,
        source=source,
        label=label[:LABEL_LIMIT],
        units=units,
        models=list(models),
        starts_at=now or utcnow(),
        expires_at=expires_at,
        payment=payment,
    )
    db.add(balance)
    db.flush()
    return balance


def balance_of(db: Session, payment: Payment) -> PackBalance | None:
    """The balance a pack payment granted, if any."""
    return db.scalar(
        sa.select(PackBalance)
        .where(PackBalance.payment_id == payment.id)
        .execution_options(populate_existing=True)
    )


def grant_bought_pack(db: Session, payment: Payment, now: dt.datetime) -> PackBalance:
    """The balance a finished pack payment buys: the units and validity recorded at checkout
    (a pack edited since still grants what was paid for), from ``now`` on."""
    pack = payment.pack
    assert pack is not None and payment.pack_units and payment.pack_valid_months
    return grant_pack(
        db,
        payment.user_id,
        units=payment.pack_units,
        label=pack.name,
        expires_at=add_months(now, payment.pack_valid_months),
        source=BalanceSource.PURCHASE,
        pack=pack,
        payment=payment,
        models=pack.models or (),
        now=now,
    )


def revoke_for_refund(db: Session, payment: Payment, now: dt.datetime) -> PackBalance | None:
    """A refunded pack payment takes back its balance's unused units from now on.

    Units already used stay used; holds in flight still settle on it (the quota settles a
    hold wherever it was taken). Audited as ``billing.pack_revoked_by_refund``.
    """
    balance = db.scalar(
        sa.select(PackBalance)
        .where(PackBalance.payment_id == payment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if balance is None or balance.revoked_at is not None:
        return balance
    before = balance_view(balance)
    balance.revoked_at = now
    db.flush()
    SYSTEM.record(
        db,
        "billing.pack_revoked_by_refund",
        "pack_balance",
        balance.id,
        before,
        {**balance_view(balance), "payment_order_id": payment.order_id},
    )
    return balance


def upgrade_leftover(db: Session, payment: Payment) -> PackBalance | None:
    """The balance of unused units that the upgrade ``payment`` activated left over (made in
    the same step, so it starts when the payment's cycle does), if any."""
    cycle = payment.cycle
    if cycle is None:
        return None
    return db.scalar(
        sa.select(PackBalance)
        .where(
            PackBalance.user_id == payment.user_id,
            PackBalance.source == BalanceSource.UPGRADE,
            PackBalance.starts_at == cycle.starts_at,
        )
        .order_by(PackBalance.id)
        .limit(1)
    )
