"""Starting a free plan (DESIGN 4.12): one cycle of an active free plan, granted to a verified
account at most once per the plan's period, never while another plan runs, and never with a
payment. Shared by the JSON API and the pricing page's form; writes one audit row.

The row lock on the user comes first, so two clicks at once cannot both pass the checks: the
second waits, then sees the first one's cycle. The per-IP limit (``nproxy.limits.free_grants``)
counts every attempt that passed the checks and reaches the grant, so one address cannot farm
new accounts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.accounts.actions import get_user
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing.activation import activate_cycle
from nproxy_core.billing.cycles import add_months
from nproxy_core.billing.grants import cycle_view
from nproxy_core.billing.models import BillingCycle, Plan
from nproxy_core.db import utcnow
from nproxy_core.errors import Conflict, Forbidden, ValidationError
from nproxy_core.i18n import _

__all__ = [
    "FREE_GRANT_REASON",
    "EmailNotVerified",
    "FreePlanUsed",
    "PlanRunning",
    "free_plan",
    "start_free",
]

#: The ``grant_reason`` of a cycle a user started from a free plan themselves.
FREE_GRANT_REASON = "free plan, started by the user"

VERIFY_HINT = _(
    "Verify your email address first: open the link we sent you, or ask for a new one "
    "on the Verify email page (/verify-email)."
)


class EmailNotVerified(Forbidden, code="email_not_verified"):
    pass


class FreePlanUsed(Conflict, code="free_plan_used"):
    pass


class PlanRunning(Conflict, code="plan_active"):
    pass


def _day(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def free_plan(db: Session, code: Any = None) -> Plan:
    """The free plan to start: the one named by ``code``, or the only active free plan.

    Refused (400 ``validation_error`` naming it) when the named plan is unknown, not free or
    not active, or when none is named and there is no active free plan, or several.
    """
    if code is None:
        plans = list(
            db.scalars(
                sa.select(Plan)
                .where(Plan.free.is_(True), Plan.active.is_(True))
                .order_by(Plan.public.desc(), Plan.id)
            )
        )
        public = [p for p in plans if p.public]
        if len(public) == 1:
            return public[0]
        if len(plans) == 1:
            return plans[0]
        if not plans:
            raise ValidationError(_("There is no free plan to start."), fields={"plan": "required"})
        names = ", ".join(repr(p.code) for p in (public or plans))
        raise ValidationError(
            _("Name the free plan to start: one of ${names}.", mapping={"names": names}),
            fields={"plan": "required"},
        )
    if not isinstance(code, str) or not code.strip():
        raise ValidationError(_("Name a plan."), fields={"plan": "invalid"})
    plan = db.scalar(sa.select(Plan).where(Plan.code == code.strip().lower()))
    if plan is None:
        raise ValidationError(
            _("There is no plan '${strip}'.", mapping={"strip": code.strip()[:40]}),
            fields={"plan": "unknown"},
        )
    _check_startable(plan)
    return plan


def _check_startable(plan: Plan) -> None:
    if not plan.free:
        raise ValidationError(
            _(
                "The plan '${code}' is not free: buy it on the pricing page.",
                mapping={"code": plan.code},
            ),
            fields={"plan": "not_free"},
        )
    if not plan.active:
        raise ValidationError(
            _("The plan '${code}' is no longer offered.", mapping={"code": plan.code}),
            fields={"plan": "unavailable"},
        )


def start_free(
    db: Session,
    plan: Plan,
    user_id: int,
    *,
    client_ip: str,
    limiter: Any = None,
    surface: Surface = Surface.WEB,
    now: dt.datetime | None = None,
) -> BillingCycle:
    """Grant the user one cycle of the free ``plan`` (its units and period), or refuse.

    ``limiter`` (the app's rate limiter; None in scripts) counts the attempt against
    ``client_ip`` once every other check passed.
    """
    now = now or utcnow()
    user = get_user(db, user_id, for_update=True)
    _check_startable(plan)
    if not user.email_verified:
        raise EmailNotVerified(VERIFY_HINT)
    last_free = db.scalar(
        sa.select(sa.func.max(BillingCycle.starts_at))
        .join(Plan, Plan.id == BillingCycle.plan_id)
        .where(BillingCycle.user_id == user.id, Plan.free.is_(True))
    )
    if last_free is not None:
        again = add_months(last_free, plan.period_months)
        if again > now:
            raise FreePlanUsed(
                _(
                    "You already had a free cycle in this period. You can start the free plan "
                    "again from ${again}.",
                    mapping={"again": _day(again)},
                )
            )
    running = db.scalar(
        sa.select(sa.func.max(BillingCycle.ends_at)).where(
            BillingCycle.user_id == user.id, BillingCycle.ends_at > now
        )
    )
    if running is not None:
        raise PlanRunning(
            _(
                "You already have an active plan, until ${running}. The free plan is for accounts "
                "without one.",
                mapping={"running": _day(running)},
            )
        )
    if limiter is not None:
        limiter.hit(
            "free_grants",
            f"ip:{client_ip}",
            message="Too many free plans were started from your network today. "
            "Please try again later.",
        )
    cycle = activate_cycle(db, plan, user.id, now)
    cycle.grant_reason = FREE_GRANT_REASON
    db.flush()
    Actor.of_user(user, surface).record(
        db,
        "billing.free_grant",
        "user",
        user.id,
        None,
        {
            "email": user.email,
            "client_ip": client_ip,
            **cycle_view(cycle),
        },
    )
    return cycle
