"""Two-factor login (DESIGN 4.7): TOTP codes (RFC 6238) from an authenticator app, with ten
single-use recovery codes; enrolled at ``/account/2fa`` by any user; asked for at login; and,
with ``nproxy.admin.require_2fa``, required of admins before any admin page or action."""

from __future__ import annotations

from typing import Any

from nproxy_core.plugins import boolean, setting

#: ``nproxy.admin.require_2fa`` (env ``NPROXY_REQUIRE_2FA``): true in production.ini.
REQUIRE_SETTING = "nproxy.admin.require_2fa"


def includeme(config: Any) -> None:
    from nproxy_core.accounts.interfaces import ISecondFactor
    from nproxy_core.twofactor.interfaces import ITwoFactor
    from nproxy_core.twofactor.requirement import admin_second_factor, two_factor_status
    from nproxy_core.twofactor.services import make_two_factor
    from nproxy_core.wiring import register_shared_service

    settings = config.get_settings()
    settings[REQUIRE_SETTING] = setting(settings, REQUIRE_SETTING, default=False, cast=boolean)
    register_shared_service(config, make_two_factor, ITwoFactor)
    register_shared_service(config, make_two_factor, ISecondFactor)
    # Every view that needs the admin permission, whoever declares it, passes this check.
    config.add_view_deriver(admin_second_factor)
    config.add_request_method(two_factor_status, "two_factor_status")

    config.add_route("account.2fa", "/account/2fa")
    config.add_route("account.2fa.setup", "/account/2fa/setup")
    config.add_route("account.2fa.confirm", "/account/2fa/confirm")
    config.add_route("account.2fa.disable", "/account/2fa/disable")
    config.add_route("account.2fa.recovery", "/account/2fa/recovery-codes")
    config.scan("nproxy_core.twofactor.views")
