"""The web admin under ``/admin`` (DESIGN 4.7): pages for admins, and their actions.

Every action calls the same service as the Telegram bot and the CLI, with the admin as actor
and surface ``web``; each writes one audit row and a refused one changes nothing:

====================================  ==================================================
action                                service
====================================  ==================================================
block, unblock, change role           ``accounts.actions``: ``block_user``, ``unblock_user``,
                                      ``set_role``
revoke a user's API key               ``developer_api.keys.revoke_key_as_admin``
grant a free cycle                    ``billing.grants.grant_cycle``
resolve a flagged payment             ``billing.review.resolve_payment``
dismiss a notification (no payment)   ``billing.review.dismiss_notification``
add, edit, restore, disable a key     ``keypool.services``: ``add_key``, ``edit_key``,
                                      ``restore_key``, ``disable_key``
test a key                            ``keypool.services.test_key``
add, enable, disable, test a proxy    ``keypool.services``: ``add_proxy``, ``enable_proxy``,
                                      ``disable_proxy``, ``test_proxy``
revoke a paired Telegram admin        ``telegram.pairing.revoke``
clear pending Telegram pairings       ``telegram.pairing.clear``
add, edit a plan                      ``billing.plans``: ``add_plan``, ``edit_plan``
add, edit a credit pack               ``billing.packs``: ``add_pack``, ``edit_pack``
set, clear a unit price override      ``pricing.IUnitPrices``: ``set_override``,
                                      ``clear_override``
====================================  ==================================================

The read side: lists and details in :mod:`.queries`, the last hour and day in :mod:`.stats`
(over hourly summaries, :mod:`.models` and :mod:`.rollups`), queue depth, workers and services
in :mod:`nproxy_core.health.probes`.
"""

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from nproxy_core.admin.rollups import INTERVAL_SECONDS
from nproxy_core.admin.tasks import roll_up_hours
from nproxy_core.tasks import TASKS


class AdminArea:
    """View predicate: the admin exists only for admins and anonymous visitors.

    A logged-in non-admin does not match, so the admin's URLs answer them 404 as if they did
    not exist; an anonymous visitor matches, and the view's permission sends them to log in.
    """

    def __init__(self, value: bool, config: Any) -> None:
        self.value = value

    def text(self) -> str:
        return f"admin_area = {self.value}"

    phash = text

    def __call__(self, context: Any, request: Request) -> bool:
        user = request.identity
        return (user is None or user.is_admin) == self.value


def includeme(config: Any) -> None:
    config.add_view_predicate("admin_area", AdminArea)
    routes = {
        "admin.overview": "/admin",
        "admin.health": "/admin/health",
        "admin.users": "/admin/users",
        "admin.user": "/admin/users/{user_id}",
        "admin.user.block": "/admin/users/{user_id}/block",
        "admin.user.unblock": "/admin/users/{user_id}/unblock",
        "admin.user.grant_cycle": "/admin/users/{user_id}/grant-cycle",
        "admin.user.role": "/admin/users/{user_id}/role",
        "admin.user.api_key.revoke": "/admin/users/{user_id}/api-keys/{key_id}/revoke",
        "admin.payments": "/admin/payments",
        "admin.notification.dismiss": "/admin/payments/notifications/{notification_id}/dismiss",
        "admin.payment": "/admin/payments/{payment_id}",
        "admin.payment.resolve": "/admin/payments/{payment_id}/resolve",
        "admin.payment.refund": "/admin/payments/{payment_id}/refund",
        "admin.referrals": "/admin/referrals",
        "admin.generations": "/admin/generations",
        "admin.generation": "/admin/generations/{generation_id}",
        "admin.keys": "/admin/keys",
        "admin.key": "/admin/keys/{key_id}",
        "admin.key.edit": "/admin/keys/{key_id}/edit",
        "admin.key.restore": "/admin/keys/{key_id}/restore",
        "admin.key.disable": "/admin/keys/{key_id}/disable",
        "admin.key.test": "/admin/keys/{key_id}/test",
        "admin.proxies": "/admin/proxies",
        "admin.proxy.enable": "/admin/proxies/{proxy_id}/enable",
        "admin.proxy.disable": "/admin/proxies/{proxy_id}/disable",
        "admin.proxy.test": "/admin/proxies/{proxy_id}/test",
        "admin.audit": "/admin/audit",
        "admin.telegram": "/admin/telegram",
        "admin.telegram.revoke": "/admin/telegram/{telegram_id}/revoke",
        "admin.telegram.clear": "/admin/telegram/pending/clear",
        "admin.plans": "/admin/plans",
        "admin.plan": "/admin/plans/{code}",
        "admin.plan.edit": "/admin/plans/{code}/edit",
        "admin.packs": "/admin/packs",
        "admin.pack": "/admin/packs/{code}",
        "admin.pack.edit": "/admin/packs/{code}/edit",
        "admin.pricing": "/admin/pricing",
        "admin.pricing.set": "/admin/pricing/set",
        "admin.pricing.clear": "/admin/pricing/clear",
        "admin.templates": "/admin/templates",
        "admin.template": "/admin/templates/{slug}",
        "admin.template.edit": "/admin/templates/{slug}/edit",
        "admin.template.activate": "/admin/templates/{slug}/activate",
        "admin.template.deactivate": "/admin/templates/{slug}/deactivate",
        "admin.template.move": "/admin/templates/{slug}/move",
        "admin.template.example": "/admin/templates/{slug}/example",
        "admin.payments_csv": "/admin/payments.csv",
    }
    for name, pattern in routes.items():
        config.add_route(name, pattern)
    config.scan("nproxy_core.admin.views")
    # Hourly summaries keep the charts fast on big tables (see admin/models.py).
    config.scan("nproxy_core.admin.tasks", categories=TASKS)
    config.add_periodic_task("admin.roll_up_hours", roll_up_hours, INTERVAL_SECONDS)
