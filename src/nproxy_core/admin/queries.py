"""What the admin pages read: lists (keyset-paginated, see :mod:`.pagination`) and the detail
of one user, payment, generation, key. Reads only; every change goes through the features'
action services."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload, selectinload

from nproxy_core.accounts.models import User
from nproxy_core.admin.pagination import Page, page_by_id, page_by_time
from nproxy_core.admin.stats import KeyStats, attempt_activity
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.audit.models import AuditEntry
from nproxy_core.billing.models import (
    BillingCycle,
    PackBalance,
    Payment,
    PaymentNotification,
    PaymentState,
    Plan,
)
from nproxy_core.db import utcnow
from nproxy_core.developer_api.models import ApiKey
from nproxy_core.generation.models import (
    Generation,
    GenerationImage,
    GenerationStatus,
    Message,
)
from nproxy_core.keypool.models import KeyAttempt, KeyState, ProviderKey, Proxy
from nproxy_core.telegram.models import TelegramAdmin

#: Rows of related lists shown on one user's page (each links to the full list).
RECENT = 20


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- overview --------------------------------------------------------------------------------


def key_pool_by_state(db: Session) -> dict[str, dict[str, int]]:
    """Keys per provider and state: {provider: {state: count}} (every state present)."""
    pool: dict[str, dict[str, int]] = {}
    rows = db.execute(
        sa.select(ProviderKey.provider, ProviderKey.state, sa.func.count())
        .where(ProviderKey.deleted_at.is_(None))
        .group_by(ProviderKey.provider, ProviderKey.state)
        .order_by(ProviderKey.provider)
    ).all()
    for provider, state, count in rows:
        states = pool.setdefault(provider, {str(s): 0 for s in KeyState})
        states[str(state)] = count
    return pool


def awaiting_review(db: Session) -> tuple[int, int]:
    """(payments, notifications for no known payment) waiting for an admin's decision."""
    payments = db.scalar(sa.select(sa.func.count()).where(Payment.awaiting_review))
    notifications = db.scalar(sa.select(sa.func.count()).where(*_UNMATCHED_OPEN))
    return int(payments or 0), int(notifications or 0)


# --- users -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UserRow:
    """A user in the list, with where their plan stands."""

    user: User
    #: The cycle running now (None: no access from a cycle), with its plan.
    cycle: BillingCycle | None
    plan: Plan | None
    #: When the user's latest cycle ends (a queued renewal included); None: never had one.
    paid_until: dt.datetime | None


def search_users(
    db: Session,
    q: str,
    cursor: str | None,
    *,
    now: dt.datetime | None = None,
    plan_id: int | None = None,
    expiring: dt.timedelta | None = None,
) -> Page[UserRow]:
    """Users whose email contains ``q`` (all users for an empty ``q``), newest first; only
    those whose running cycle is of ``plan_id``, or whose paid access ends within
    ``expiring`` (:func:`nproxy_core.admin.money.expiring_users`)."""
    from nproxy_core.admin.money import expiring_users

    now = now or utcnow()
    query = sa.select(User)
    if q:
        query = query.where(User.email.ilike(f"%{escape_like(q.lower())}%", escape="\\"))
    if plan_id is not None:
        C = BillingCycle
        query = query.where(
            User.id.in_(
                sa.select(C.user_id).where(
                    C.plan_id == plan_id, C.starts_at <= now, C.ends_at > now
                )
            )
        )
    if expiring is not None:
        query = query.where(User.id.in_(expiring_users(now, expiring)))
    page = page_by_id(db, query, User.id, cursor)
    users = [row[0] for row in page.items]
    ids = [user.id for user in users]
    current: dict[int, BillingCycle] = {}
    until: dict[int, dt.datetime] = {}
    if ids:
        C = BillingCycle
        for cycle in db.scalars(
            sa.select(C)
            .options(joinedload(C.plan))
            .where(C.user_id.in_(ids), C.starts_at <= now, C.ends_at > now)
        ):
            current[cycle.user_id] = cycle
        latest = sa.select(C.user_id, sa.func.max(C.ends_at)).where(C.user_id.in_(ids))
        until = {user_id: end for user_id, end in db.execute(latest.group_by(C.user_id))}
    rows = [
        UserRow(
            user,
            current.get(user.id),
            current[user.id].plan if user.id in current else None,
            until.get(user.id),
        )
        for user in users
    ]
    return Page(rows, page.next_cursor)


@dataclasses.dataclass(frozen=True)
class UserDetail:
    user: User
    cycles: list[BillingCycle]
    current_cycle: BillingCycle | None
    payments: list[Payment]
    generations: list[Any]
    audit: list[AuditEntry]
    #: Developer API keys, live ones first, then the newest.
    api_keys: list[ApiKey]
    #: Pack balances (bought packs, upgrade leftovers, grants), newest first, exact.
    packs: list[PackBalance] = dataclasses.field(default_factory=list)


def user_detail(db: Session, user_id: int, now: dt.datetime) -> UserDetail | None:
    user = db.get(User, user_id)
    if user is None:
        return None
    cycles = list(
        db.scalars(
            sa.select(BillingCycle)
            .where(BillingCycle.user_id == user_id)
            .order_by(BillingCycle.starts_at.desc(), BillingCycle.id.desc())
            .limit(RECENT)
        )
    )
    current = next((c for c in cycles if c.starts_at <= now < c.ends_at), None)
    payments = list(
        db.scalars(
            sa.select(Payment)
            .options(selectinload(Payment.cycle))
            .where(Payment.user_id == user_id)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(RECENT)
        )
    )
    generations = list(
        db.execute(
            _generation_rows()
            .where(Generation.user_id == user_id)
            .order_by(Generation.created_at.desc(), Generation.id.desc())
            .limit(RECENT)
        )
    )
    audit = list(
        db.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.target_type == "user", AuditEntry.target_id == str(user_id))
            .order_by(AuditEntry.id.desc())
            .limit(RECENT)
        )
    )
    api_keys = list(
        db.scalars(
            sa.select(ApiKey)
            .where(ApiKey.user_id == user_id)
            .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc())
            .limit(RECENT)
        )
    )
    packs = list(
        db.scalars(
            sa.select(PackBalance)
            .where(PackBalance.user_id == user_id)
            .order_by(PackBalance.id.desc())
            .limit(RECENT)
        )
    )
    return UserDetail(user, cycles, current, payments, generations, audit, api_keys, packs)


def find_user_ref(db: Session, ref: str) -> User | None:
    """A user named by id or by email (as typed in a filter)."""
    ref = ref.strip()
    if ref.isdigit():
        return db.get(User, int(ref))
    return db.scalar(sa.select(User).where(User.email == ref.lower()))


# --- payments --------------------------------------------------------------------------------

REVIEW = "review"
#: The ``state`` filter of the payments page: the review queue, everything, or one status.
PAYMENT_FILTERS = (REVIEW, "all", *(str(s) for s in PaymentState))

_UNMATCHED_OPEN = (
    PaymentNotification.payment_id.is_(None),
    PaymentNotification.needs_review,
    PaymentNotification.resolved_at.is_(None),
)


def list_payments(db: Session, state: str, user_id: int | None, cursor: str | None) -> Page[Any]:
    query = sa.select(Payment, User.email).join(User, User.id == Payment.user_id)
    if state == REVIEW:
        query = query.where(Payment.awaiting_review)
    elif state != "all":
        query = query.where(Payment.status == PaymentState(state))
    if user_id is not None:
        query = query.where(Payment.user_id == user_id)
    return page_by_time(db, query, Payment.created_at, Payment.id, cursor)


def unmatched_notifications(db: Session, limit: int = 100) -> list[PaymentNotification]:
    """Notifications for no known payment (unknown orders) still waiting for an admin."""
    return list(
        db.scalars(
            sa.select(PaymentNotification)
            .where(*_UNMATCHED_OPEN)
            .order_by(PaymentNotification.received_at.desc())
            .limit(limit)
        )
    )


def payment_detail(db: Session, payment_id: int) -> Payment | None:
    return db.scalar(
        sa.select(Payment)
        .options(
            joinedload(Payment.user),
            selectinload(Payment.cycle),
            selectinload(Payment.notifications),
        )
        .where(Payment.id == payment_id)
    )


# --- generations -----------------------------------------------------------------------------

GENERATION_STATUSES = tuple(str(s) for s in GenerationStatus)


def _generation_rows() -> sa.Select[Any]:
    made = (
        sa.select(sa.func.count())
        .where(GenerationImage.generation_id == Generation.id)
        .correlate(Generation)
        .scalar_subquery()
    )
    return (
        sa.select(
            Generation,
            User.email,
            Message.prompt,
            Message.batch_size,
            Message.mode,
            made.label("made"),
        )
        .join(User, User.id == Generation.user_id)
        .join(Message, Message.id == Generation.message_id)
    )


def list_generations(
    db: Session,
    *,
    status: str | None,
    user_id: int | None,
    provider: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    cursor: str | None,
) -> Page[Any]:
    query = _generation_rows()
    if status:
        query = query.where(Generation.status == GenerationStatus(status))
    if user_id is not None:
        query = query.where(Generation.user_id == user_id)
    if provider:
        query = query.where(Generation.provider == provider)
    if since is not None:
        query = query.where(Generation.created_at >= since)
    if until is not None:
        query = query.where(Generation.created_at < until)
    return page_by_time(db, query, Generation.created_at, Generation.id, cursor, id_kind=uuid.UUID)


def providers_seen(db: Session, enabled: list[str]) -> list[str]:
    """Providers to filter by: the enabled ones and those keys were added for."""
    names = set(enabled) | set(db.scalars(sa.select(ProviderKey.provider).distinct()))
    return sorted(names)


@dataclasses.dataclass(frozen=True)
class AttemptRow:
    attempt: KeyAttempt
    key_label: str | None
    key_mask: str
    proxy_label: str | None


@dataclasses.dataclass(frozen=True)
class GenerationDetail:
    generation: Generation
    message: Message
    user: User
    images: list[GenerationImage]
    #: Attempts by image index (None: attempts recorded before images were told apart).
    attempts: dict[int | None, list[AttemptRow]]

    @property
    def images_by_n(self) -> dict[int, GenerationImage]:
        return {image.n: image for image in self.images}


def generation_detail(db: Session, generation_id: uuid.UUID) -> GenerationDetail | None:
    generation = db.scalar(
        sa.select(Generation)
        .options(joinedload(Generation.message), selectinload(Generation.images))
        .where(Generation.id == generation_id)
    )
    if generation is None:
        return None
    user = db.get(User, generation.user_id)
    assert user is not None  # the foreign key guarantees it
    rows = db.execute(
        sa.select(KeyAttempt, ProviderKey.label, ProviderKey.secret_mask, Proxy.label)
        .join(ProviderKey, ProviderKey.id == KeyAttempt.key_id)
        .outerjoin(Proxy, Proxy.id == KeyAttempt.proxy_id)
        .where(KeyAttempt.reference == str(generation_id))
        .order_by(KeyAttempt.id)
    ).all()
    attempts: dict[int | None, list[AttemptRow]] = defaultdict(list)
    for attempt, label, mask, proxy_label in rows:
        attempts[attempt.image_index].append(AttemptRow(attempt, label, mask, proxy_label))
    return GenerationDetail(
        generation, generation.message, user, list(generation.images), dict(attempts)
    )


# --- keys and proxies ------------------------------------------------------------------------


def keys_with_stats(db: Session, now: dt.datetime) -> list[tuple[ProviderKey, KeyStats]]:
    keys = list(
        db.scalars(
            sa.select(ProviderKey)
            .options(joinedload(ProviderKey.proxy))
            .where(ProviderKey.deleted_at.is_(None))
            .order_by(ProviderKey.provider, ProviderKey.id)
        )
    )
    stats = attempt_activity(db, now).keys
    return [(key, stats.get(key.id, KeyStats())) for key in keys]


def key_attempts(db: Session, key_id: int, cursor: str | None) -> Page[Any]:
    query = (
        sa.select(KeyAttempt, Proxy.label)
        .outerjoin(Proxy, Proxy.id == KeyAttempt.proxy_id)
        .where(KeyAttempt.key_id == key_id)
    )
    return page_by_time(db, query, KeyAttempt.created_at, KeyAttempt.id, cursor)


def proxies_with_keys(db: Session) -> list[tuple[Proxy, int]]:
    """Every proxy, and how many keys call through it."""
    uses = (
        sa.select(ProviderKey.proxy_id, sa.func.count().label("key_count"))
        .where(ProviderKey.deleted_at.is_(None))
        .group_by(ProviderKey.proxy_id)
        .subquery()
    )
    rows = db.execute(
        sa.select(Proxy, sa.func.coalesce(uses.c.key_count, 0))
        .outerjoin(uses, uses.c.proxy_id == Proxy.id)
        .order_by(Proxy.id)
    ).all()
    return [(proxy, int(count)) for proxy, count in rows]


# --- audit -----------------------------------------------------------------------------------


def parse_target(target: str) -> tuple[str | None, str | None]:
    """``user:12`` → ("user", "12"); ``user`` → ("user", None); "" → (None, None)."""
    target = target.strip()
    if not target:
        return None, None
    kind, _, ident = target.partition(":")
    return kind.strip() or None, ident.strip() or None


def list_audit(
    db: Session, *, actor: str, action: str, target: str, cursor: str | None
) -> Page[Any]:
    query = sa.select(AuditEntry)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    kind, ident = parse_target(target)
    if kind is not None:
        query = query.where(AuditEntry.target_type == kind)
    if ident is not None:
        query = query.where(AuditEntry.target_id == ident)
    return page_by_id(db, query, AuditEntry.id, cursor)


# --- Telegram --------------------------------------------------------------------------------

#: Alerts shown on the Telegram page: the open ones, then the latest resolved.
RECENT_ALERTS = 50


def telegram_admins(db: Session) -> list[tuple[TelegramAdmin, str | None]]:
    """Paired Telegram admins, in pairing order, with the email of their linked account."""
    return [
        (admin, email)
        for admin, email in db.execute(
            sa.select(TelegramAdmin, User.email)
            .outerjoin(User, User.id == TelegramAdmin.user_id)
            .order_by(TelegramAdmin.id)
        ).all()
    ]


def recent_alerts(db: Session) -> list[Alert]:
    """Open alerts first, then the latest resolved ones: two index reads, bounded, however
    long the history grows."""
    shown = list(
        db.scalars(
            sa.select(Alert)
            .where(Alert.state == AlertState.OPEN)
            .order_by(Alert.last_seen.desc(), Alert.id.desc())
            .limit(RECENT_ALERTS)
        )
    )
    if len(shown) < RECENT_ALERTS:
        shown += db.scalars(
            sa.select(Alert)
            .where(Alert.state == AlertState.RESOLVED)
            .order_by(Alert.last_seen.desc(), Alert.id.desc())
            .limit(RECENT_ALERTS - len(shown))
        )
    return shown
