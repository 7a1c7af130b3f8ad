"""Accounts: registration, log in and out, password reset, email verification, the dashboard,
``/api/v1/me``."""

from typing import Any

from nproxy_core.accounts.tasks import prune_sessions
from nproxy_core.tasks import TASKS


def includeme(config: Any) -> None:
    config.add_route("api.session", "/api/v1/session")
    config.add_route("api.register", "/api/v1/auth/register")
    config.add_route("api.login", "/api/v1/auth/login")
    config.add_route("api.logout", "/api/v1/auth/logout")
    config.add_route("api.password_reset", "/api/v1/auth/password-reset")
    config.add_route("api.password_reset_confirm", "/api/v1/auth/password-reset/confirm")
    config.add_route("api.verify_email", "/api/v1/auth/verify-email")
    config.add_route("api.me", "/api/v1/me")

    config.add_route("register", "/register")
    config.add_route("login", "/login")
    config.add_route("login.otp", "/login/otp")
    config.add_route("logout", "/logout")
    config.add_route("forgot_password", "/forgot-password")
    config.add_route("reset_password", "/reset-password")
    config.add_route("logout_everywhere", "/logout-everywhere")
    config.add_route("verify_email", "/verify-email")
    config.add_route("account.password", "/account/password")
    config.add_route("dashboard", "/dashboard")
    config.scan("nproxy_core.accounts.views")
    config.scan("nproxy_core.accounts.tasks", categories=TASKS)
    config.add_periodic_task("accounts.prune_sessions", prune_sessions, 24 * 3600)
