"""A real SMTP server on 127.0.0.1 that keeps what it receives (aiosmtpd), for tests and
benchmarks that send mail through pyramid_mailer's SMTP mailer."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from fakes.proxies import free_port


class _Keeper:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()
        return "250 OK"


class SMTPSink:
    """``with SMTPSink() as sink:``; ``sink.port``; ``sink.wait_for(n)`` → the messages."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._keeper = _Keeper()
        self._controller = Controller(self._keeper, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self._keeper.messages)

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        with self._keeper.arrived:
            while len(self._keeper.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._keeper.messages)} of {count} mails arrived")
                self._keeper.arrived.wait(left)
            return list(self._keeper.messages)

    def settings(self) -> dict[str, str]:
        """pyramid_mailer settings that send here."""
        return {
            "nproxy.mailer": "smtp",
            "mail.host": "127.0.0.1",
            "mail.port": str(self.port),
            "mail.tls": "false",
            "mail.ssl": "false",
            "mail.default_sender": "nproxy <no-reply@example.com>",
        }

    def start(self) -> SMTPSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SMTPSink:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
