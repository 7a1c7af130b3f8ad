"""Payments and the review queue: resolve a flagged payment, dismiss a notification."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request

from nproxy_core.admin import queries
from nproxy_core.admin.page import (
    act,
    actor,
    admin_action,
    admin_page,
    base,
    empty_page,
    form,
    int_id,
    list_error,
)
from nproxy_core.admin.pagination import Page
from nproxy_core.alerts import IAlertNotifier
from nproxy_core.billing import refunds, review
from nproxy_core.billing.interfaces import IPlan
from nproxy_core.billing.models import PackBalance
from nproxy_core.errors import NotFound, ValidationError
from nproxy_core.plugin_registry import IPlugins


@admin_page("admin.payments", "payments.html")
def payments(request: Request) -> dict[str, Any]:
    state = request.params.get("state", "all") or "all"
    user_ref = request.params.get("user", "").strip()[:254]
    error = None
    page: Page[Any] = empty_page()
    try:
        if state not in queries.PAYMENT_FILTERS:
            raise ValidationError(f"state must be one of {', '.join(queries.PAYMENT_FILTERS)}")
        user_id = None
        if user_ref:
            found = queries.find_user_ref(request.db, user_ref)
            if found is None:
                raise ValidationError(f"no user {user_ref!r}")
            user_id = found.id
        page = queries.list_payments(request.db, state, user_id, request.params.get("after"))
    except ValidationError as exc:
        error = list_error(request, exc)
    unmatched = queries.unmatched_notifications(request.db) if state == queries.REVIEW else []
    return base(
        request,
        "payments",
        state=state,
        states=queries.PAYMENT_FILTERS,
        user_ref=user_ref,
        page=page,
        unmatched=unmatched,
        error=error,
    )


@admin_page("admin.payment", "payment.html")
def payment(request: Request) -> dict[str, Any]:
    found = queries.payment_detail(request.db, int_id(request, "payment_id"))
    if found is None:
        raise NotFound("No such payment.")
    processor = request.find_service(IPlugins).processor(found.processor)
    return base(
        request,
        "payments",
        payment=found,
        can_refund=refunds.can_refund(processor),
        refund_via=getattr(processor, "display_name", "") or found.processor,
    )


@admin_action("admin.payment.resolve")
def payment_resolve(request: Request) -> HTTPSeeOther:
    payment_id = int_id(request, "payment_id")

    def resolve() -> str:
        done = review.resolve_payment(
            request.db,
            request.find_service(IPlan),
            payment_id,
            decision=form(request, "decision"),
            note=form(request, "note"),
            actor=actor(request),
            alerts=request.find_service(IAlertNotifier),
        )
        if str(done.resolution) == "activated":
            if done.cycle is not None:
                return (
                    f"Payment {done.id} activated: {done.user.email} has a cycle until "
                    f"{done.cycle.ends_at:%Y-%m-%d %H:%M} UTC."
                )
            balance = request.db.scalar(
                sa.select(PackBalance).where(PackBalance.payment_id == done.id)
            )
            if balance is not None:
                return (
                    f"Payment {done.id} activated: {done.user.email} has {balance.units} "
                    f"units of {balance.label} until {balance.expires_at:%Y-%m-%d %H:%M} UTC."
                )
        return f"Payment {done.id} dismissed; nothing was granted."

    return act(request, request.route_path("admin.payment", payment_id=payment_id), resolve)


@admin_action("admin.notification.dismiss")
def notification_dismiss(request: Request) -> HTTPSeeOther:
    notification_id = int_id(request, "notification_id")

    def dismiss() -> str:
        review.dismiss_notification(
            request.db, notification_id, note=form(request, "note"), actor=actor(request)
        )
        return f"Notification {notification_id} dismissed."

    return act(request, request.route_path("admin.payments", _query={"state": "review"}), dismiss)


@admin_action("admin.payment.refund")
def payment_refund(request: Request) -> HTTPSeeOther:
    """Send a paid payment's money back through its processor (Telegram Stars) and end what
    it gave; refused with the reason for a processor that cannot refund from here."""
    payment_id = int_id(request, "payment_id")

    def refund() -> str:
        done = refunds.refund_payment(
            request.db,
            request.find_service(IPlan),
            request.find_service(IPlugins),
            payment_id,
            actor=actor(request),
            note=form(request, "note"),
        )
        if done.cycle is not None:
            return (
                f"Payment {done.id} refunded: {done.user.email}'s cycle now ends "
                f"{done.cycle.ends_at:%Y-%m-%d %H:%M} UTC."
            )
        if done.pack_id is not None:
            return f"Payment {done.id} refunded: the pack's unused units are taken back."
        return f"Payment {done.id} refunded."

    return act(request, request.route_path("admin.payment", payment_id=payment_id), refund)
