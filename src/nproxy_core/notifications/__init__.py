"""Outgoing mail: rendered from templates, sent from the queue through pyramid_mailer."""

from __future__ import annotations

from typing import Any

from nproxy_core.notifications.mail import IMailer, make_mailer, render_email, send_email
from nproxy_core.tasks import TASKS

__all__ = ["IMailer", "render_email", "send_email"]


def includeme(config: Any) -> None:
    config.register_service(make_mailer(config.get_settings()), IMailer)
    config.scan("nproxy_core.notifications.mail", categories=TASKS)
