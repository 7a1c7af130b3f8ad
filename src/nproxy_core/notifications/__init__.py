"""Outgoing mail: a console mailer for development (messages go to the log, so a person can
follow a reset link locally) and SMTP through pyramid_mailer in production."""

from __future__ import annotations

from typing import Any

from nproxy_core.notifications.mail import ConsoleMailer, IMailer, SMTPMailer, send_email
from nproxy_core.plugins import ConfigurationError

__all__ = ["IMailer", "send_email"]


def includeme(config: Any) -> None:
    settings = config.get_settings()
    kind = settings.get("nproxy.mailer", "console")
    if kind == "smtp":
        mailer: IMailer = SMTPMailer(settings)
    elif kind == "console":
        mailer = ConsoleMailer(settings)
    else:
        raise ConfigurationError(f"malformed setting 'nproxy.mailer': {kind!r}")
    config.register_service(mailer, IMailer)
