"""Referrals (DESIGN 4.14): every account's code and links, the referrer a new account
records, and the referrer's reward when the referred account first pays.

``record_referral(db, new_user_id, code)`` is what the customers' bot calls for
``/start ref_CODE``; ``code_for(db, user_id)`` gives an account's code.
"""

from __future__ import annotations

import functools
from typing import Any

from nproxy_core.referrals.services import (
    ReferralRefused,
    claw_back_for_refund,
    code_for,
    links,
    normalize_code,
    record_referral,
    reward_for_activation,
    reward_units,
)

__all__ = [
    "ReferralRefused",
    "code_for",
    "includeme",
    "links",
    "normalize_code",
    "record_referral",
    "reward_units",
]


def includeme(config: Any) -> None:
    from nproxy_core.accounts.interfaces import UserRegistered
    from nproxy_core.billing.activation import register_payment_hook
    from nproxy_core.referrals import views

    units = reward_units(config.get_settings())
    register_payment_hook(
        "referrals",
        functools.partial(_reward, units=units),
        claw_back_for_refund,
    )
    config.add_route("referral.link", "/r/{code}")
    config.add_subscriber(views.registered, UserRegistered)
    config.add_request_method(views.referral_links, "referral_links", reify=True)
    config.scan("nproxy_core.referrals.views")


def _reward(db: Any, payment: Any, now: Any, *, units: int) -> Any:
    return reward_for_activation(db, payment, now, units=units)
