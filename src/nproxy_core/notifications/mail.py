"""Mailers and the one way to send an email: after the transaction commits."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pyramid.request import Request
from pyramid_mailer.mailer import Mailer
from pyramid_mailer.message import Message
from zope.interface import Interface, implementer

log = logging.getLogger("nproxy.mail")


class IMailer(Interface):
    def send(to: str, subject: str, body: str) -> None:
        """Send one plain-text email now."""


@implementer(IMailer)
class ConsoleMailer:
    """Development: the message is written to the log instead of being sent."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.sender = settings.get("mail.default_sender")
        self.outbox: list[dict[str, str]] = []

    def send(self, to: str, subject: str, body: str) -> None:
        self.outbox.append({"to": to, "subject": subject, "body": body})
        log.info("mail to %s: %s\n%s", to, subject, body)


@implementer(IMailer)
class SMTPMailer:
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.mailer = Mailer.from_settings(settings, "mail.")
        self.sender = settings.get("mail.default_sender")

    def send(self, to: str, subject: str, body: str) -> None:
        message = Message(subject=subject, sender=self.sender, recipients=[to], body=body)
        self.mailer.send_immediately(message, fail_silently=False)


def send_email(request: Request, to: str, subject: str, body: str) -> None:
    """Send once the transaction commits: no mail about a change that was rolled back."""
    mailer = request.find_service(IMailer)

    def after_commit(committed: bool) -> None:
        if not committed:
            return
        try:
            mailer.send(to, subject, body)
        except Exception:
            log.exception("could not send mail %r", subject)

    request.tm.get().addAfterCommitHook(after_commit)
