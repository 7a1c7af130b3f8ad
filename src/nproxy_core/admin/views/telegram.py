"""The Telegram admin bot: who is paired, pairings waiting, recent alerts; revoke access and
clear the pending pairings."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request

from nproxy_core.admin import queries
from nproxy_core.admin.page import (
    act,
    actor,
    admin_action,
    admin_page,
    base,
    int_id,
)
from nproxy_core.db import utcnow
from nproxy_core.telegram import pairing


@admin_page("admin.telegram", "telegram.html")
def telegram(request: Request) -> dict[str, Any]:
    db, now = request.db, utcnow()
    return base(
        request,
        "telegram",
        admins=queries.telegram_admins(db),
        pending=pairing.pending(db, now),
        max_pending=pairing.MAX_PENDING,
        alerts=queries.recent_alerts(db),
        bot_configured=bool((request.registry.settings.get("telegram.bot_token") or "").strip()),
    )


@admin_action("admin.telegram.revoke")
def telegram_revoke(request: Request) -> HTTPSeeOther:
    telegram_id = int_id(request, "telegram_id")

    def revoke() -> str:
        admin = pairing.revoke(request.db, telegram_id, actor=actor(request))
        who = f"@{admin.username}" if admin.username else f"Telegram id {admin.telegram_id}"
        return f"{who} no longer has access to the admin bot."

    return act(request, request.route_path("admin.telegram"), revoke)


@admin_action("admin.telegram.clear")
def telegram_clear(request: Request) -> HTTPSeeOther:
    def clear() -> str:
        dropped = pairing.clear(request.db, actor=actor(request))
        if not dropped:
            return "No pairing codes were waiting."
        codes = "code" if dropped == 1 else "codes"
        return f"Dropped {dropped} pending pairing {codes}; their askers may ask the bot again."

    return act(request, request.route_path("admin.telegram"), clear)
