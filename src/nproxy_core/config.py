"""The composition root: settings, environment overrides, and the Configurator that wires
every feature of nproxy together. The web app and the Celery app are both built from here."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from pyramid.config import Configurator

from nproxy_core.plugins import (
    ConfigurationError,
    boolean,
    http_url,
    one_of,
    positive_int,
    setting,
)

__all__ = [
    "ConfigurationError",
    "configure",
    "normalize_settings",
    "public_url",
    "server_secrets",
]

log = logging.getLogger(__name__)


# Environment variables that override ini settings: secrets and service URLs. The environment
# wins, so production.ini holds no secret.
ENVIRONMENT_OVERRIDES: dict[str, str] = {
    "DATABASE_URL": "sqlalchemy.url",
    "BROKER_URL": "celery.broker_url",
    "NPROXY_SECRET": "nproxy.secret",
    "NPROXY_SECRET_PREVIOUS": "nproxy.secret_previous",
    "NPROXY_PUBLIC_URL": "nproxy.public_url",
    "RATELIMIT_STORAGE_URL": "nproxy.ratelimit.storage",
    "S3_ENDPOINT_URL": "storage.s3.endpoint_url",
    "S3_BUCKET": "storage.s3.bucket",
    "S3_REGION": "storage.s3.region",
    "S3_ACCESS_KEY": "storage.s3.access_key",
    "S3_SECRET_KEY": "storage.s3.secret_key",
    "NOWPAYMENTS_API_KEY": "nowpayments.api_key",
    "NOWPAYMENTS_IPN_SECRET": "nowpayments.ipn_secret",
    "STRIPE_SECRET_KEY": "stripe.secret_key",
    "STRIPE_WEBHOOK_SECRET": "stripe.webhook_secret",
    "TELEGRAM_BOT_TOKEN": "telegram.bot_token",
    "NPROXY_METRICS_TOKEN": "nproxy.metrics_token",
    "SMTP_HOST": "mail.host",
    "SMTP_PORT": "mail.port",
    "SMTP_USERNAME": "mail.username",
    "SMTP_PASSWORD": "mail.password",
    # What an operator changes without rebuilding the image (DESIGN 4.11): the enabled plugins,
    # the sender of every email, each plugin's base URL, and where processes keep their state.
    "NPROXY_PROVIDERS": "nproxy.providers",
    "NPROXY_PAYMENTS": "nproxy.payments",
    "MAIL_DEFAULT_SENDER": "mail.default_sender",
    "NANOBANANA_API_BASE": "nanobanana.api_base",
    "NOWPAYMENTS_API_BASE": "nowpayments.api_base",
    "STRIPE_API_BASE": "stripe.api_base",
    "OPENAI_API_BASE": "openai.api_base",
    "TELEGRAM_API_BASE": "telegram.api_base",
    "TELEGRAM_CUSTOMER_BOT_USERNAME": "telegram.customer_bot_username",
    "NPROXY_STATE_DIR": "nproxy.state_dir",
    # Admins must use two-factor login (DESIGN 4.7); production.ini turns it on.
    "NPROXY_REQUIRE_2FA": "nproxy.admin.require_2fa",
    # The customers' bot (DESIGN 4.14), which also sells for Telegram Stars.
    "TELEGRAM_CUSTOMER_BOT_TOKEN": "telegram.customer_bot_token",
}

DEFAULTS: dict[str, str] = {
    "nproxy.env": "development",
    "nproxy.storage": "local",
    # The plan used where none is named (a row of ``plans``: ``nproxy plans list``). The
    # nproxy.plan.* terms below made its row and keep setting it until ``nproxy plans edit``.
    "nproxy.plan.default": "monthly",
    # What one unit of quota is worth: an image estimated at this many USD costs one unit.
    "nproxy.units.usd_per_unit": "0.039",
    "nproxy.plan.name": "Monthly",
    "nproxy.plan.price": "9.99",
    "nproxy.plan.currency": "USD",
    "nproxy.plan.request_limit": "300",
    "nproxy.plan.period_months": "1",
    "nproxy.providers": "demo",
    "nproxy.payments": "",
    "nproxy.ratelimit.storage": "memory://",
    "nproxy.keypool.cooldown_seconds": "300",
    "nproxy.keypool.max_consecutive_failures": "10",
    # A rate limit (429) cools every key of the key's project, not only the key (DESIGN 4.5).
    "nproxy.keypool.group_rate_limits": "true",
    # Provider calls one worker process keeps in flight (its thread pool; I/O bound).
    "nproxy.worker.concurrency": "256",
    "nproxy.session_max_age_seconds": str(14 * 24 * 3600),
    "nproxy.mailer": "debug",
    "mail.default_sender": "nproxy <no-reply@localhost>",
    "telegram.api_base": "https://api.telegram.org",
    # pyramid_tm would load the user on every request that carries a cookie (even /healthz and
    # each poll) only to label the transaction: nproxy has no use for the label.
    "tm.annotate_user": "false",
    "nproxy.admin.alert_dedup_seconds": "900",
    "nproxy.admin.daily_report_hour": "8",
    "nproxy.admin.alert_queue_depth": "1000",
    "nproxy.admin.require_2fa": "false",
}

REQUIRED = ("sqlalchemy.url", "nproxy.secret", "nproxy.public_url")


def _previous_secrets(merged: dict[str, Any], *, production: bool) -> tuple[str, ...]:
    """``nproxy.secret_previous``: the secrets used before the current one, still accepted
    for reading (a comma list, newest first). The message at fault never shows a value."""
    raw = merged.get("nproxy.secret_previous") or ()
    values = raw.split(",") if isinstance(raw, str) else list(raw)
    previous: list[str] = []
    for value in (str(v).strip() for v in values):
        if value and value != merged["nproxy.secret"] and value not in previous:
            previous.append(value)
    if production:
        for value in previous:
            _check_secret("nproxy.secret_previous", value)
    return tuple(previous)


def _check_secret(name: str, value: str) -> None:
    # The secret signs sessions and tokens and derives the key-encryption key. The message
    # names the setting, never its value.
    if len(value) < 32:
        raise ConfigurationError(f"malformed setting {name!r}: shorter than 32 characters")


def server_secrets(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """Every secret nproxy accepts, the current one (``nproxy.secret``) first, then
    ``nproxy.secret_previous``: sign and encrypt with the first, verify and decrypt with any."""
    previous = settings.get("nproxy.secret_previous") or ()
    if isinstance(previous, str):  # settings not normalised yet: the comma list as written
        previous = [p.strip() for p in previous.split(",") if p.strip()]
    return (settings["nproxy.secret"], *(p for p in previous if p != settings["nproxy.secret"]))


def default_state_dir(environ: Mapping[str, str]) -> str:
    """Where processes keep their state (beat's schedule, heartbeat files) when
    ``nproxy.state_dir`` is not set: ``$XDG_STATE_HOME/nproxy``, else ``~/.local/state/nproxy``.
    The user's own folder, so it is writable whatever the working directory (the image's
    ``/app`` belongs to root); the image sets ``NPROXY_STATE_DIR`` to a folder of its own."""
    home = environ.get("HOME") or os.path.expanduser("~")
    base = environ.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state")
    return os.path.join(base, "nproxy")


def normalize_settings(
    settings: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Merge defaults, ini and environment, and check the settings nproxy cannot run without.

    Raises :class:`ConfigurationError` with one line naming the setting at fault.
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {**DEFAULTS, **settings}
    for env_name, key in ENVIRONMENT_OVERRIDES.items():
        if environ.get(env_name):
            merged[key] = environ[env_name]
    if not str(merged.get("nproxy.state_dir") or "").strip():
        merged["nproxy.state_dir"] = default_state_dir(environ)
    for key in REQUIRED:
        setting(merged, key, required=True)
    merged["nproxy.public_url"] = setting(merged, "nproxy.public_url", cast=http_url)
    setting(merged, "nproxy.env", cast=one_of("development", "production"))
    if merged["nproxy.env"] == "production":
        _check_secret("nproxy.secret", merged["nproxy.secret"])
    merged["nproxy.secret_previous"] = _previous_secrets(
        merged, production=merged["nproxy.env"] == "production"
    )
    for key in (
        "nproxy.plan.request_limit",
        "nproxy.plan.period_months",
        "nproxy.keypool.cooldown_seconds",
        "nproxy.keypool.max_consecutive_failures",
        "nproxy.worker.concurrency",
        "nproxy.session_max_age_seconds",
    ):
        setting(merged, key, cast=positive_int)
    setting(merged, "nproxy.storage", cast=one_of("local", "s3"))
    setting(merged, "nproxy.keypool.group_rate_limits", cast=boolean)
    _grant_stars_settings(merged)
    return merged


def _grant_stars_settings(merged: dict[str, Any]) -> None:
    """The Stars payment plugin sells through the customers' bot: unless set on their own,
    ``stars.bot_token`` and ``stars.api_base`` are that bot's token and Telegram's API base
    (a plugin is given only its own prefix, so the core hands them over under it)."""
    for own, core in (
        ("stars.bot_token", "telegram.customer_bot_token"),
        ("stars.api_base", "telegram.api_base"),
    ):
        if not str(merged.get(own) or "").strip() and merged.get(core):
            merged[own] = merged[core]


def configure(settings: Mapping[str, Any] | None = None) -> Configurator:
    """Build the Configurator, or raise :class:`ConfigurationError` naming what is wrong."""
    # Order matters: transactions and the database before the features that use them.
    settings = normalize_settings(settings or {})
    config = Configurator(settings=settings)

    # Transactions: one per request, retried on serialization failures and conflicts.
    config.include("pyramid_services")
    settings.setdefault("retry.attempts", 3)  # read by pyramid_retry when it is included
    config.include("pyramid_retry")
    config.include("pyramid_tm")
    # Bounded bodies and well-formed paths, queries and charsets before anything reads them.
    config.include("nproxy_core.gate")
    config.include("nproxy_core.db")

    # Plugins are loaded once; a broken or unknown one stops start-up here.
    config.include("nproxy_core.plugin_registry")

    # Rendering, sessions, security and errors; the request's language first (DESIGN 4.15).
    config.include("nproxy_core.i18n")
    config.include("nproxy_core.templating")
    config.include("nproxy_core.accounts.security")
    config.include("nproxy_core.errors")
    config.include("nproxy_core.ratelimit")
    config.include("nproxy_core.tasks")
    config.include("nproxy_core.metrics")
    config.include("nproxy_core.logs")

    # Features, each registering its own routes, services and tasks, in dependency order.
    config.include("nproxy_core.notifications")
    config.include("nproxy_core.audit")
    config.include("nproxy_core.health")
    # Heartbeat files for the containers' healthchecks (``nproxy health``).
    config.include("nproxy_core.healthcheck")
    # Admin alerts: every feature below may raise one (the key pool, billing, the probes);
    # Telegram is the sender that tells the paired admins.
    config.include("nproxy_core.alerts")
    config.include("nproxy_core.telegram")
    config.include("nproxy_core.keypool")
    config.include("nproxy_core.accounts")
    # Two-factor login: the code at login, enrolment, and the admins' requirement.
    config.include("nproxy_core.twofactor")
    config.include("nproxy_core.site")
    config.include("nproxy_core.pricing")
    config.include("nproxy_core.quota")
    config.include("nproxy_core.billing")
    config.include("nproxy_core.referrals")
    config.include("nproxy_core.demo")
    config.include("nproxy_core.storage")
    config.include("nproxy_core.uploads")
    config.include("nproxy_core.prompt_templates")
    config.include("nproxy_core.generation")
    config.include("nproxy_core.chat")
    # Image tools: vary, upscale, favourite, share, delete one image (DESIGN 4.17).
    config.include("nproxy_core.images")
    config.include("nproxy_core.developer_api")
    config.include("nproxy_core.monitoring")
    config.include("nproxy_core.api_docs")
    # The admin reads and acts on every feature above, so it comes last.
    config.include("nproxy_core.admin")
    config.include("nproxy_core.adminbot")
    # Telegram for customers (DESIGN 4.14): account links and the bot's login links.
    config.include("nproxy_core.customerbot")
    return config


def public_url(request: Any, route_name: str, **kw: Any) -> str:
    """An absolute URL on the public base, for emails and payment callbacks."""
    base = request.registry.settings["nproxy.public_url"]
    return base + request.route_path(route_name, **kw)
