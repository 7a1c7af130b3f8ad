"""``/admin/referrals``: who referred whom, and the reward each referral earned (DESIGN 4.14),
newest first, a page at a time (keyset on the referral's time), with a referrer filter."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pyramid.request import Request
from sqlalchemy.orm import aliased

from nproxy_core.accounts.models import User
from nproxy_core.admin import queries
from nproxy_core.admin.page import admin_page, base, empty_page, list_error
from nproxy_core.admin.pagination import Page, page_by_time
from nproxy_core.errors import ValidationError
from nproxy_core.referrals.models import Referral, ReferralReward


def _totals(db: Any) -> dict[str, int]:
    row = db.execute(
        sa.select(
            sa.select(sa.func.count()).select_from(Referral).scalar_subquery(),
            sa.select(sa.func.count(sa.distinct(Referral.referrer_id))).scalar_subquery(),
            sa.select(sa.func.count()).select_from(ReferralReward).scalar_subquery(),
            sa.select(sa.func.coalesce(sa.func.sum(ReferralReward.units), 0))
            .where(ReferralReward.clawed_back_at.is_(None))
            .scalar_subquery(),
            sa.select(sa.func.count())
            .select_from(ReferralReward)
            .where(ReferralReward.clawed_back_at.is_not(None))
            .scalar_subquery(),
        )
    ).one()
    return dict(
        zip(("referrals", "referrers", "rewards", "units", "clawed_back"), row, strict=True)
    )


def list_referrals(db: Any, referrer_id: int | None, cursor: str | None) -> Page[Any]:
    referrer, referred = aliased(User), aliased(User)
    query = (
        sa.select(
            Referral,
            referrer.email.label("referrer_email"),
            referred.email.label("referred_email"),
            ReferralReward,
        )
        .join(referrer, referrer.id == Referral.referrer_id)
        .join(referred, referred.id == Referral.referred_id)
        .outerjoin(ReferralReward, ReferralReward.referred_id == Referral.referred_id)
    )
    if referrer_id is not None:
        query = query.where(Referral.referrer_id == referrer_id)
    return page_by_time(db, query, Referral.created_at, Referral.referred_id, cursor)


@admin_page("admin.referrals", "referrals.html")
def referrals(request: Request) -> dict[str, Any]:
    referrer_ref = request.params.get("referrer", "").strip()[:254]
    error = None
    page: Page[Any] = empty_page()
    try:
        referrer_id = None
        if referrer_ref:
            found = queries.find_user_ref(request.db, referrer_ref)
            if found is None:
                raise ValidationError(f"no user {referrer_ref!r}")
            referrer_id = found.id
        page = list_referrals(request.db, referrer_id, request.params.get("after"))
    except ValidationError as exc:
        error = list_error(request, exc)
    return base(
        request,
        "referrals",
        referrer_ref=referrer_ref,
        page=page,
        totals=_totals(request.db),
        error=error,
    )
