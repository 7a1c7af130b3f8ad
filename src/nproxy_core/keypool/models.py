"""Key pool rows: provider keys, proxies, the attempt log and the shared round-robin cursors."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nproxy_core.db import Base, str_enum, utcnow


class KeyState(enum.StrEnum):
    ACTIVE = "active"
    COOLDOWN = "cooldown"
    OUT_OF_FUNDS = "out_of_funds"
    MANUAL_REVIEW = "manual_review"
    DISABLED = "disabled"


#: States the router may still route to (a cooldown key once its deadline has passed).
IN_SERVICE = (KeyState.ACTIVE, KeyState.COOLDOWN)


class ProxyState(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class AttemptPath(enum.StrEnum):
    PROXY = "proxy"
    DIRECT = "direct"


class AttemptOutcome(enum.StrEnum):
    """The router's classes. ``transport`` is the retryable kind that never got an answer."""

    SUCCESS = "success"
    RETRYABLE = "retryable"
    TRANSPORT = "transport"
    OUT_OF_FUNDS = "out_of_funds"
    KEY_REJECTED = "key_rejected"
    USER_CAUSED = "user_caused"


_MONEY = sa.Numeric(18, 6)


class Proxy(Base):
    __tablename__ = "proxies"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2048), unique=True)
    label: Mapped[str | None] = mapped_column(sa.String(100))
    state: Mapped[ProxyState] = mapped_column(
        str_enum(ProxyState, "proxy_state"), default=ProxyState.ACTIVE
    )
    # Health: failures since the last success, for the admin views.
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    total_failures: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    last_failure_at: Mapped[dt.datetime | None]
    last_ok_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProviderKey(Base):
    __tablename__ = "provider_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The provider's entry-point name (``nanobanana``).
    provider: Mapped[str] = mapped_column(sa.String(64))
    label: Mapped[str | None] = mapped_column(sa.String(100))
    #: Fernet token of the secret; see :mod:`nproxy_core.keypool.crypto`.
    secret_encrypted: Mapped[str] = mapped_column(sa.Text)
    #: HMAC of the secret, so the same key cannot be added twice without decrypting them all.
    secret_fingerprint: Mapped[str] = mapped_column(sa.String(64))
    #: What admins see (``AIza…x9Q2``); kept so listing never needs the decryption key.
    secret_mask: Mapped[str] = mapped_column(sa.String(32))
    state: Mapped[KeyState] = mapped_column(
        str_enum(KeyState, "key_state"), default=KeyState.ACTIVE
    )
    #: Why the key left service (the error or the admin action), for the admin views.
    state_reason: Mapped[str | None] = mapped_column(sa.String(500))
    cooldown_until: Mapped[dt.datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    billing_group: Mapped[str | None] = mapped_column(sa.String(100))
    #: The provider-side project that owns the key (for Gemini, the Google Cloud project):
    #: rate limits apply per project, not per key (DESIGN 4.5). None: the key is its own.
    project: Mapped[str | None] = mapped_column(sa.String(100))
    proxy_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("proxies.id", ondelete="SET NULL"), index=True
    )
    balance: Mapped[Decimal | None] = mapped_column(_MONEY)
    balance_checked_at: Mapped[dt.datetime | None]
    estimated_spend: Mapped[Decimal] = mapped_column(_MONEY, default=Decimal(0))
    last_used_at: Mapped[dt.datetime | None]
    #: When an admin deleted the key (``nproxy keys delete``). The row stays, disabled, so that
    #: its attempts, spend and audit entries keep naming a real key; every action and list
    #: leaves it out (:func:`nproxy_core.keypool.services.get_key`).
    deleted_at: Mapped[dt.datetime | None]
    # Bumped by every write to the row (claim, outcome, admin action). Attempts record the
    # versions they saw, which orders them exactly against state changes made by other
    # processes (see the concurrency tests), and lets an admin form detect a stale edit.
    version: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    proxy: Mapped[Proxy | None] = relationship(lazy="joined")

    @property
    def name(self) -> str:
        """``key 'eu-3' (#12)`` (see :func:`key_name`)."""
        return key_name(self.id, self.label)

    __table_args__ = (
        sa.UniqueConstraint("provider", "secret_fingerprint", name="uq_provider_keys_secret"),
        # The router walks a provider's keys in id order.
        sa.Index("ix_provider_keys_provider_id", "provider", "id"),
        sa.Index("ix_provider_keys_billing_group", "provider", "billing_group"),
        sa.Index("ix_provider_keys_project", "provider", "project"),
    )


class KeyAttempt(Base):
    """One provider call: one key over one path. Every call the router makes leaves one."""

    __tablename__ = "key_attempts"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
    )
    key_id: Mapped[int] = mapped_column(sa.ForeignKey("provider_keys.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(sa.String(64))
    #: What the image belongs to (a generation id), when the caller gave one; an admin's key
    #: test is :data:`KEY_TEST_REFERENCE`.
    reference: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    #: The image's place in its batch (``ImageRequest.index``), so an admin sees each image's
    #: own attempts; None for key tests.
    image_index: Mapped[int | None] = mapped_column(sa.SmallInteger)
    path: Mapped[AttemptPath] = mapped_column(str_enum(AttemptPath, "attempt_path"))
    proxy_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("proxies.id", ondelete="SET NULL"), index=True
    )
    outcome: Mapped[AttemptOutcome] = mapped_column(str_enum(AttemptOutcome, "attempt_outcome"))
    http_status: Mapped[int | None]
    latency_ms: Mapped[int]
    #: For admins only; never contains the key.
    error: Mapped[str | None] = mapped_column(sa.String(500))
    estimated_cost: Mapped[Decimal | None] = mapped_column(_MONEY)
    #: The cooldown deadline the key had after this attempt, when the attempt set one.
    cooldown_until: Mapped[dt.datetime | None]
    #: When the router chose the key, and the key row's version at that moment.
    picked_at: Mapped[dt.datetime]
    claim_version: Mapped[int] = mapped_column(sa.BigInteger)
    #: The key row's version after this attempt's outcome was applied (None: key untouched).
    outcome_version: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.Index("ix_key_attempts_key_created", "key_id", "created_at"),
        # The admin's health views aggregate the last hour and day over every key; the
        # included columns (``reference`` for COUNTS_FOR_HEALTH) let PostgreSQL answer from
        # the index alone.
        sa.Index(
            "ix_key_attempts_created_at",
            "created_at",
            postgresql_include=["key_id", "outcome", "latency_ms", "reference"],
        ),
    )


#: The ``reference`` of attempts made by an admin's key test rather than for an image.
KEY_TEST_REFERENCE = "key-test"

#: The attempts a key's health figures count (success rate, latency, failures in a row): not
#: an admin's key tests. A key can pass the free check and still fail every image; counting
#: the checks would make its figures look better than what users get from it.
COUNTS_FOR_HEALTH = sa.or_(
    KeyAttempt.reference.is_(None), KeyAttempt.reference != KEY_TEST_REFERENCE
)


def key_name(key_id: int, label: str | None, *, start: bool = False) -> str:
    """How alerts, pages and messages name a key: ``key 'eu-3' (#12)``, or ``key #12``.

    The label alone is ambiguous (labels repeat and change) and the id alone means nothing to
    a person, so both. ``start``: capitalised, to open a sentence.
    """
    word = "Key" if start else "key"
    return f"{word} '{label}' (#{key_id})" if label else f"{word} #{key_id}"


class KeyCursor(Base):
    """Where round robin stands for one provider; every worker process shares the row."""

    __tablename__ = "key_cursors"

    provider: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    #: The key chosen last (no foreign key: deleting that key must not break routing).
    last_key_id: Mapped[int | None]
    #: How many choices were made: a cheap counter for the health view.
    turns: Mapped[int] = mapped_column(sa.BigInteger, default=0)
