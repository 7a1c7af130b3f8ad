"""The daily Telegram report (DESIGN 4.8): the last 24 hours for the paired admins."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.billing.models import BillingCycle
from nproxy_core.generation.models import GenerationImage
from nproxy_core.keypool.models import IN_SERVICE, AttemptOutcome, KeyAttempt, ProviderKey
from nproxy_core.telegram.models import AlertMessage, TelegramAdmin

PERIOD = dt.timedelta(hours=24)
EXPIRING = dt.timedelta(days=3)


def compose(db: Session, now: dt.datetime) -> str:
    since = now - PERIOD
    images = db.scalar(
        sa.select(sa.func.count())
        .select_from(GenerationImage)
        .where(GenerationImage.created_at >= since)
    )
    outcomes = dict(
        db.execute(
            sa.select(KeyAttempt.outcome, sa.func.count())
            .where(KeyAttempt.created_at >= since, KeyAttempt.outcome != AttemptOutcome.SUCCESS)
            .group_by(KeyAttempt.outcome)
        ).all()
    )
    # Quotas and bills follow the provider's project: spend is summed per project, and a key
    # without one stands alone.
    group = sa.func.coalesce(
        sa.func.nullif(ProviderKey.project, ""), "key " + sa.cast(ProviderKey.id, sa.String)
    )
    spend = db.execute(
        sa.select(ProviderKey.provider, group, sa.func.sum(KeyAttempt.estimated_cost))
        .join(ProviderKey, ProviderKey.id == KeyAttempt.key_id)
        .where(KeyAttempt.created_at >= since, KeyAttempt.estimated_cost.is_not(None))
        .group_by(ProviderKey.provider, group)
        .order_by(ProviderKey.provider, group)
    ).all()
    new = db.scalar(
        sa.select(sa.func.count())
        .select_from(BillingCycle)
        .where(BillingCycle.starts_at >= since, BillingCycle.starts_at < now)
    )
    expiring = db.scalar(
        sa.select(sa.func.count())
        .select_from(BillingCycle)
        .where(BillingCycle.ends_at > now, BillingCycle.ends_at <= now + EXPIRING)
    )
    out = db.execute(
        sa.select(ProviderKey.id, ProviderKey.provider, ProviderKey.state)
        .where(ProviderKey.state.not_in(IN_SERVICE))
        .order_by(ProviderKey.id)
    ).all()

    lines = [f"Daily report, {since:%Y-%m-%d %H:%M} to {now:%H:%M} UTC", ""]
    lines.append(f"Images made: {images}")
    failures = ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())) or "none"
    lines.append(f"Failed provider calls by class: {failures}")
    total = sum((row[2] or Decimal(0) for row in spend), Decimal(0))
    lines.append(f"Estimated spend: ${total:.2f} (by project)")
    lines += [f"  {provider} {name}: ${amount:.2f}" for provider, name, amount in spend]
    lines.append(f"New subscriptions: {new}; expiring in the next 3 days: {expiring}")
    if out:
        lines.append(f"Keys out of service: {len(out)}")
        lines += [f"  #{key_id} {provider}: {state}" for key_id, provider, state in out[:30]]
    else:
        lines.append("Keys out of service: none")
    return "\n".join(lines)


def queue_report(db: Session, now: dt.datetime) -> int:
    """Put today's report in the outbox for every paired admin; returns the messages queued."""
    text = compose(db, now)
    chats = db.scalars(sa.select(TelegramAdmin.chat_id).order_by(TelegramAdmin.id)).all()
    for chat_id in chats:
        db.add(AlertMessage(alert_id=None, chat_id=chat_id, text=text))
    return len(chats)
