"""Outgoing mail through pyramid_mailer, always from the queue (DESIGN 9).

``send_email`` renders a message from ``templates/email/<name>/subject.txt`` and ``body.txt``
and asks for the ``notifications.send_email`` task once the transaction commits: no request
waits on SMTP (so timing tells nothing about who has an account), no mail goes out about a
change that was rolled back, and a mail server that is down is retried with backoff.

The mailer is chosen by ``nproxy.mailer``: ``smtp`` (production, ``mail.*`` settings),
``debug`` (development: each message is written to ``mail.top_level_directory`` and to the
log) or ``dummy`` (tests: kept in ``.outbox``).
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Mapping
from typing import Any

from pyramid.renderers import render
from pyramid.request import Request
from pyramid_mailer.mailer import DebugMailer, DummyMailer, Mailer
from pyramid_mailer.message import Message
from zope.interface import Interface, classImplements

from nproxy_core.plugins import ConfigurationError, one_of, setting
from nproxy_core.tasks import task

log = logging.getLogger("nproxy.mail")

DEFAULT_DEBUG_FOLDER = "var/mail"


class IMailer(Interface):
    """A pyramid_mailer mailer (``smtp``, ``debug`` or ``dummy``, by ``nproxy.mailer``)."""

    def send_immediately(message, fail_silently=False):
        """Send ``message`` now; a failure raises unless ``fail_silently``."""


# pyramid_mailer's mailers declare no interface: say here that they provide this one.
classImplements(Mailer, IMailer)
classImplements(DebugMailer, IMailer)
classImplements(DummyMailer, IMailer)


class LoggingDebugMailer(DebugMailer):
    """pyramid_mailer's debug mailer, which also writes each message to the log, so a person
    running the embedded default can follow a reset link from the console."""

    def send_immediately(self, message: Message, fail_silently: bool = False) -> None:
        super().send_immediately(message, fail_silently)
        log.info("mail to %s: %s\n%s", ", ".join(message.recipients), message.subject, message.body)


def make_mailer(settings: Mapping[str, Any]) -> Any:
    kind = setting(
        settings, "nproxy.mailer", default="debug", cast=one_of("smtp", "debug", "dummy", "console")
    )
    if kind == "smtp":
        return Mailer.from_settings(settings, "mail.")
    if kind == "dummy":
        return DummyMailer()
    # "console" is the older name of the development mailer.
    folder = setting(settings, "mail.top_level_directory", default=DEFAULT_DEBUG_FOLDER)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"malformed setting 'mail.top_level_directory': cannot create {folder!r}"
        ) from exc
    return LoggingDebugMailer(folder)


def render_email(request: Request, name: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """The subject and plain-text body of the email template ``name``."""
    values = {"settings": request.registry.settings, **context}
    subject = render(f"email/{name}/subject.txt", values, request=request)
    body = render(f"email/{name}/body.txt", values, request=request)
    return " ".join(subject.split()), body


#: Transient failures of the mail server or the network: retried with growing delays.
RETRYABLE = (smtplib.SMTPException, OSError)


@task(
    name="notifications.send_email",
    autoretry_for=RETRYABLE,
    retry_backoff=10,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=12,
)
def send_email_task(request: Request, to: str, subject: str, body: str) -> None:
    """Send one rendered message now; raising a transient error makes Celery retry it."""
    mailer = request.find_service(IMailer)
    sender = request.registry.settings.get("mail.default_sender")
    message = Message(subject=subject, sender=sender, recipients=[to], body=body)
    mailer.send_immediately(message, fail_silently=False)
    log.info("mail %r sent", subject)


def send_email(request: Request, to: str | None, name: str, context: Mapping[str, Any]) -> None:
    """Render the email template ``name`` and send it from the queue once this commits. An
    account with no address (made in the customer Telegram bot) gets no mail."""
    if not to:
        log.info("mail %r skipped: the account has no email address", name)
        return
    subject, body = render_email(request, name, context)
    request.enqueue(send_email_task, to, subject, body)
