"""Billing: payments, the notifications processors sent about them, and the billing cycles
that successful payments grant."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nproxy_core.accounts.models import User
from nproxy_core.db import Base, JSONType, str_enum, utcnow


class PaymentState(enum.StrEnum):
    """A payment's status: ``created`` until the processor has an invoice, then the
    processor's own statuses (``nproxy_core.plugins.PaymentStatus``)."""

    CREATED = "created"
    WAITING = "waiting"
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"
    SENDING = "sending"
    PARTIALLY_PAID = "partially_paid"
    FINISHED = "finished"
    FAILED = "failed"
    REFUNDED = "refunded"
    EXPIRED = "expired"


#: Payments the processor may still move; reconciliation asks about these.
OPEN_STATES = (
    PaymentState.CREATED,
    PaymentState.WAITING,
    PaymentState.CONFIRMING,
    PaymentState.CONFIRMED,
    PaymentState.SENDING,
)


class Resolution(enum.StrEnum):
    """What an admin decided about a payment flagged for review."""

    ACTIVATED = "activated"
    DISMISSED = "dismissed"


class NotificationSource(enum.StrEnum):
    WEBHOOK = "webhook"
    RECONCILIATION = "reconciliation"


def decimal_text(amount: Decimal) -> str:
    """``9.99`` for a column's ``9.99000000``: at least two decimals, more only when the amount
    has them (``0.00012345`` BTC)."""
    amount = amount.normalize()
    if amount.as_tuple().exponent > -2:
        amount = amount.quantize(Decimal("0.01"))
    return format(amount, "f")


class Plan(Base):
    """A plan sold (or granted): its price, its period, and the units each cycle of it holds.

    Rows, not settings (DESIGN 4.12): an operator adds, edits, hides or retires plans with
    ``nproxy plans`` (``billing.plans``). A plan is never deleted: payments and cycles name it.
    Editing one changes nothing already bought: a payment keeps the price, units and period of
    its checkout, and a cycle its own units and period.
    """

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    price: Mapped[Decimal] = mapped_column(sa.Numeric(18, 8))
    currency: Mapped[str] = mapped_column(sa.String(16))
    #: The price in Telegram Stars, for a processor that takes them; None: not sold for Stars.
    price_stars: Mapped[int | None]
    period_months: Mapped[int]
    #: Units each cycle of the plan holds (today one image costs one unit).
    units: Mapped[int]
    #: The model ids a cycle of the plan may use; empty: every model.
    models: Mapped[list[str]] = mapped_column(JSONType, default=list)
    max_batch: Mapped[int | None]
    #: ``N/period`` (the ``limits`` notation) for the developer API; None: the default.
    api_rate_limit: Mapped[str | None] = mapped_column(sa.String(64))
    #: Listed on the pricing page and ``GET /api/v1/plans``; a hidden plan is only granted.
    public: Mapped[bool] = mapped_column(default=True)
    free: Mapped[bool] = mapped_column(default=False)
    recurring_allowed: Mapped[bool] = mapped_column(default=False)
    #: Only active plans are sold; an inactive one keeps its cycles and payments.
    active: Mapped[bool] = mapped_column(default=True)
    #: The name in Russian and Uzbek, as the admin wrote it (``i18n.fields``); ``{}``: English.
    translations: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        sa.CheckConstraint(
            "(free AND price = 0) OR (NOT free AND price > 0)", name="price_matches_free"
        ),
        sa.CheckConstraint("units > 0", name="units_positive"),
        sa.CheckConstraint("period_months > 0", name="period_positive"),
    )

    @property
    def price_text(self) -> str:
        """``9.99`` for the column's ``9.99000000``: at least two decimals, more only when the
        price has them (``0.00012345`` BTC)."""
        return decimal_text(self.price)

    @property
    def request_limit(self) -> int:
        """The units, under the name the cycles' column keeps."""
        return self.units

    def __repr__(self) -> str:
        return f"<Plan {self.code}>"


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Our own reference, sent to the processor and shown to the user: random, so it reveals
    # nothing and cannot be guessed.
    order_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    processor: Mapped[str] = mapped_column(sa.String(64))
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(18, 8))
    currency: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[PaymentState] = mapped_column(
        str_enum(PaymentState, "payment_state"), default=PaymentState.CREATED
    )
    invoice_id: Mapped[str | None] = mapped_column(sa.String(128))
    #: The subscription this payment started or renewed (a processor with renewals); its
    #: renewal invoices each make one payment, so an invoice id is unique within it.
    subscription_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="SET NULL")
    )
    processor_payment_id: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    checkout_url: Mapped[str | None] = mapped_column(sa.Text)
    #: The plan bought, and what it gave at checkout: a plan edited afterwards still activates
    #: what was paid for (the amount and currency above are its price then).
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id"))
    plan_units: Mapped[int | None]
    plan_period_months: Mapped[int | None]
    #: Or the credit pack bought, with its units and validity at checkout.
    pack_id: Mapped[int | None] = mapped_column(sa.ForeignKey("credit_packs.id"))
    pack_units: Mapped[int | None]
    pack_valid_months: Mapped[int | None]
    #: Flagged once, flagged for good: from then on only an admin's resolve activates it
    #: (DESIGN 4.9), even when a clean ``finished`` arrives later.
    needs_review: Mapped[bool] = mapped_column(default=False)
    review_reason: Mapped[str | None] = mapped_column(sa.String(255))
    #: The admin's decision on a flagged payment; a new problem reported after it (a status
    #: change, another processor payment) puts the payment back in the queue.
    resolved_at: Mapped[dt.datetime | None]
    resolution: Mapped[Resolution | None] = mapped_column(str_enum(Resolution, "resolution"))
    resolution_note: Mapped[str | None] = mapped_column(sa.String(1000))
    resolved_by: Mapped[str | None] = mapped_column(sa.String(320))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship()
    plan: Mapped[Plan | None] = relationship()
    pack: Mapped[CreditPack | None] = relationship()
    #: The cycle this payment activated. The key is on the cycle's side, unique there, so the
    #: database itself allows at most one cycle per payment.
    cycle: Mapped[BillingCycle | None] = relationship(back_populates="payment", uselist=False)
    notifications: Mapped[list[PaymentNotification]] = relationship(
        back_populates="payment", order_by="PaymentNotification.id"
    )

    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        # One payment per renewal invoice: a renewal grants at most one cycle (DESIGN 4.16).
        sa.UniqueConstraint(
            "subscription_id", "invoice_id", name="uq_payments_subscription_id_invoice_id"
        ),
        # The admin's payment list, newest first, and its review queue.
        sa.Index("ix_payments_created_at_id", "created_at", "id"),
        sa.Index(
            "ix_payments_awaiting_review",
            "created_at",
            "id",
            postgresql_where=sa.text("needs_review AND resolved_at IS NULL"),
            sqlite_where=sa.text("needs_review AND resolved_at IS NULL"),
        ),
        # The admin's Money row (admin/money.py, migration 0022): revenue, and refunds.
        sa.Index(
            "ix_payments_revenue",
            "created_at",
            postgresql_include=["currency", "processor", "amount"],
            postgresql_where=sa.text("status = 'finished'"),
            sqlite_where=sa.text("status = 'finished'"),
        ),
        sa.Index(
            "ix_payments_refunded",
            "id",
            postgresql_where=sa.text("status = 'refunded'"),
            sqlite_where=sa.text("status = 'refunded'"),
        ),
    )

    @hybrid_property
    def awaiting_review(self) -> bool:
        """Flagged and not yet decided by an admin: in the review queue. The one wording of
        that condition, on a row and in a query (``where(Payment.awaiting_review)``, which the
        partial index ``ix_payments_awaiting_review`` serves)."""
        return self.needs_review and self.resolved_at is None

    @awaiting_review.inplace.expression
    @classmethod
    def _awaiting_review_expression(cls) -> sa.ColumnElement[bool]:
        return sa.and_(cls.needs_review, cls.resolved_at.is_(None))

    def flag_for_review(self, reason: str) -> None:
        self.needs_review = True
        # Keep the first reason and count on the notifications for the rest.
        if not self.review_reason:
            self.review_reason = reason[:255]

    def reopen_review(self, reason: str) -> None:
        """A new problem after an admin's decision: the payment goes back to the queue."""
        self.needs_review = True
        self.review_reason = reason[:255]
        self.resolved_at = None
        self.resolution = None
        self.resolution_note = None
        self.resolved_by = None

    def __repr__(self) -> str:
        return f"<Payment {self.id} {self.status}>"


class PaymentNotification(Base):
    """Every verified webhook and every reconciliation answer, as received, and what it did."""

    __tablename__ = "payment_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="SET NULL"), index=True
    )
    processor: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[NotificationSource] = mapped_column(
        str_enum(NotificationSource, "notification_source")
    )
    #: Whether the processor's signature checked out (reconciliation answers come over the
    #: processor's authenticated API and count as verified). Rejected webhooks are only logged:
    #: a forged notification changes nothing, not even this table.
    signature_valid: Mapped[bool] = mapped_column(default=True)
    order_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    status: Mapped[str] = mapped_column(sa.String(32))
    processor_payment_id: Mapped[str | None] = mapped_column(sa.String(128))
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: ``activated``, ``updated``, ``ignored``, ``review``, ``refunded``, ``unknown_order``…
    result: Mapped[str] = mapped_column(sa.String(32))
    needs_review: Mapped[bool] = mapped_column(default=False)
    detail: Mapped[str | None] = mapped_column(sa.String(255))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    #: For a notification about no known payment (an unknown order): an admin looked at it
    #: and closed it. Notifications of a payment are resolved with their payment.
    resolved_at: Mapped[dt.datetime | None]
    resolution_note: Mapped[str | None] = mapped_column(sa.String(1000))
    resolved_by: Mapped[str | None] = mapped_column(sa.String(320))

    payment: Mapped[Payment | None] = relationship(back_populates="notifications")

    __table_args__ = (
        # The review queue's notifications about no known payment.
        sa.Index(
            "ix_payment_notifications_unmatched",
            "received_at",
            postgresql_where=sa.text("payment_id IS NULL AND needs_review AND resolved_at IS NULL"),
            sqlite_where=sa.text("payment_id IS NULL AND needs_review AND resolved_at IS NULL"),
        ),
    )


class BillingCycle(Base):
    """A period of access with its units and the quota ledger's counters.

    ``request_limit`` holds the cycle's units (the name predates units: one image was one
    request); ``used`` and ``reserved`` count units too.
    """

    __tablename__ = "billing_cycles"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    period_months: Mapped[int]
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id"))
    #: The cycle's units, copied from its plan (or its payment) when granted.
    request_limit: Mapped[int]
    # Units of images made (``used``) and held for ones in flight (``reserved``): see quota/
    used: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)
    payment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="SET NULL"), unique=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Expiry warnings go out once each.
    warned_3d_at: Mapped[dt.datetime | None]
    warned_1d_at: Mapped[dt.datetime | None]
    #: Why an admin granted this cycle free of charge (no payment); shown on the user's page.
    grant_reason: Mapped[str | None] = mapped_column(sa.String(500))

    user: Mapped[User] = relationship()
    plan: Mapped[Plan] = relationship()
    payment: Mapped[Payment | None] = relationship(back_populates="cycle")

    __table_args__ = (
        # The ledger's promise, kept by the database too: never more than the limit.
        sa.CheckConstraint(
            "used >= 0 AND reserved >= 0 AND used + reserved <= request_limit",
            name="quota_within_limit",
        ),
        sa.CheckConstraint("ends_at >= starts_at", name="ends_after_start"),
        sa.Index("ix_billing_cycles_user_id_ends_at", "user_id", "ends_at"),
        # The admin's Money row (admin/money.py, migration 0022): paid cycles by end, by grant
        # time, and per user.
        sa.Index(
            "ix_billing_cycles_paid_ends_at",
            "ends_at",
            postgresql_include=["user_id", "starts_at", "plan_id", "payment_id"],
            postgresql_where=sa.text("payment_id IS NOT NULL"),
            sqlite_where=sa.text("payment_id IS NOT NULL"),
        ),
        sa.Index(
            "ix_billing_cycles_paid_created_at",
            "created_at",
            postgresql_include=["id", "user_id", "payment_id"],
            postgresql_where=sa.text("payment_id IS NOT NULL"),
            sqlite_where=sa.text("payment_id IS NOT NULL"),
        ),
        sa.Index(
            "ix_billing_cycles_paid_user_id",
            "user_id",
            "id",
            postgresql_where=sa.text("payment_id IS NOT NULL"),
            sqlite_where=sa.text("payment_id IS NOT NULL"),
        ),
    )

    @property
    def remaining(self) -> int:
        return self.request_limit - self.used - self.reserved

    def __repr__(self) -> str:
        return f"<BillingCycle {self.id} user={self.user_id}>"


class CreditPack(Base):
    """A credit pack sold: units of its own that roll over until they expire (DESIGN 4.12).

    Like plans, rows managed with ``nproxy packs``; never deleted (payments and balances name
    them), only made inactive.
    """

    __tablename__ = "credit_packs"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    price: Mapped[Decimal] = mapped_column(sa.Numeric(18, 8))
    currency: Mapped[str] = mapped_column(sa.String(16))
    price_stars: Mapped[int | None]
    units: Mapped[int]
    #: How long the units last from purchase, in calendar months.
    valid_months: Mapped[int] = mapped_column(default=12)
    #: The model ids the pack's units may pay for; empty: every model.
    models: Mapped[list[str]] = mapped_column(JSONType, default=list)
    public: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    #: The name in Russian and Uzbek, as the admin wrote it; ``{}``: English only.
    translations: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        sa.CheckConstraint("price > 0", name="price_positive"),
        sa.CheckConstraint("units > 0", name="units_positive"),
        sa.CheckConstraint("valid_months > 0", name="valid_months_positive"),
    )

    @property
    def price_text(self) -> str:
        return decimal_text(self.price)

    def __repr__(self) -> str:
        return f"<CreditPack {self.code}>"


class BalanceSource(enum.StrEnum):
    """Where a pack balance came from."""

    #: A credit pack bought with a payment.
    PURCHASE = "purchase"
    #: The unused units of a cycle cut short by an upgrade, valid until that cycle's end.
    UPGRADE = "upgrade"
    #: Given by an admin.
    GRANT = "grant"


class PackBalance(Base):
    """Units a user owns outside any cycle: a bought pack, or what an upgrade left over.

    Holds draw on the current cycle first, then on these, oldest first (DESIGN 4.12); the
    counters work as a cycle's do (``used`` and ``reserved`` within ``units``). Being the
    user's exact purchase, a balance is shown exactly.
    """

    __tablename__ = "pack_balances"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    pack_id: Mapped[int | None] = mapped_column(sa.ForeignKey("credit_packs.id"))
    source: Mapped[BalanceSource] = mapped_column(str_enum(BalanceSource, "balance_source"))
    #: What people see: the pack's name, or what the balance is for.
    label: Mapped[str] = mapped_column(sa.String(100))
    units: Mapped[int]
    used: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)
    #: The model ids these units may pay for; empty: every model.
    models: Mapped[list[str]] = mapped_column(JSONType, default=list)
    starts_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    payment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="SET NULL"), unique=True
    )
    #: A refund took the unused units back: nothing more is drawn from it.
    revoked_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()
    pack: Mapped[CreditPack | None] = relationship()
    payment: Mapped[Payment | None] = relationship()

    __table_args__ = (
        sa.CheckConstraint(
            "units > 0 AND used >= 0 AND reserved >= 0 AND used + reserved <= units",
            name="units_within_balance",
        ),
        sa.Index("ix_pack_balances_user_id_expires_at", "user_id", "expires_at"),
    )

    @property
    def units_left(self) -> int:
        return 0 if self.revoked_at is not None else self.units - self.used - self.reserved

    def __repr__(self) -> str:
        return f"<PackBalance {self.id} user={self.user_id}>"


class SubscriptionState(enum.StrEnum):
    """Where a subscription with a processor that renews by itself stands (DESIGN 4.16)."""

    #: Renews at the end of each paid cycle.
    ACTIVE = "active"
    #: A renewal could not be charged; the processor tries again (the user was emailed).
    PAST_DUE = "past_due"
    #: Cancelled at period end: the paid cycle runs to its end, nothing more is charged.
    ENDING = "ending"
    #: Over: no more renewals.
    ENDED = "ended"


class Subscription(Base):
    """A processor's subscription that renews a plan by itself until cancelled.

    It starts with a checkout's payment (``order_id``) and keeps that payment's terms: each
    renewal invoice must charge ``amount`` ``currency`` and grants a cycle of ``units`` for
    ``period_months`` of ``plan_id``, whatever the plan row says by then.
    """

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    processor: Mapped[str] = mapped_column(sa.String(64))
    #: The processor's id of the subscription (``sub_...``) and of its customer (``cus_...``).
    external_id: Mapped[str] = mapped_column(sa.String(128))
    customer_id: Mapped[str | None] = mapped_column(sa.String(128))
    #: The order of the checkout that started it.
    order_id: Mapped[str] = mapped_column(sa.String(64))
    #: The processor's id of the invoice that checkout paid (its refund is the checkout's).
    initial_invoice_id: Mapped[str | None] = mapped_column(sa.String(128))
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id"))
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(18, 8))
    currency: Mapped[str] = mapped_column(sa.String(16))
    units: Mapped[int]
    period_months: Mapped[int]
    state: Mapped[SubscriptionState] = mapped_column(
        str_enum(SubscriptionState, "subscription_state"), default=SubscriptionState.ACTIVE
    )
    #: When the processor said what ``state`` says: an older report never overrides it.
    state_at: Mapped[dt.datetime | None]
    #: The end of the period the processor last reported paid.
    current_period_end: Mapped[dt.datetime | None]
    cancel_requested_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship()
    plan: Mapped[Plan] = relationship()

    __table_args__ = (
        sa.UniqueConstraint(
            "processor", "external_id", name="uq_subscriptions_processor_external_id"
        ),
        sa.Index("ix_subscriptions_processor_customer_id", "processor", "customer_id"),
    )

    @property
    def renews(self) -> bool:
        return self.state in (SubscriptionState.ACTIVE, SubscriptionState.PAST_DUE)

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.processor} {self.state}>"
