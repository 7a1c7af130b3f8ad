"""The mail a test app sent, delivered the way a worker would deliver it.

Mail leaves through the queue (``notifications.send_email``, and ``accounts.send_password_reset``
before it). The tests' broker is Kombu's in-process memory transport: reading the outbox first
takes the mail jobs off that queue and runs them, each in its own transaction, exactly as a
worker would; then it answers what pyramid_mailer's dummy mailer holds.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from typing import Any

from nproxy_core.notifications import IMailer
from nproxy_core.tasks import CELERY_APP
from nproxy_core.wiring import find_service

MAIL_TASKS = ("notifications.send_email", "accounts.send_password_reset")


class Outbox(Sequence):
    """``[{"to", "subject", "body"}, ...]``: every message sent so far, oldest first."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.celery = registry[CELERY_APP]
        self.mailer = find_service(registry, IMailer)
        self.purge()

    def _queue(self, connection: Any) -> Any:
        return connection.SimpleQueue(self.celery.conf.task_default_queue)

    def purge(self) -> None:
        """Forget jobs left on the in-process queue by earlier tests."""
        with self.celery.connection_for_read() as connection:
            self._queue(connection).clear()

    def deliver(self) -> int:
        """Run every mail job waiting on the queue (and those they queue); how many ran."""
        ran = 0
        with self.celery.connection_for_read() as connection:
            jobs = self._queue(connection)
            while True:
                others = []
                found = False
                while True:
                    try:
                        message = jobs.get_nowait()
                    except queue.Empty:
                        break
                    name = message.headers.get("task")
                    if name not in MAIL_TASKS:
                        others.append(message)
                        continue
                    args, kwargs, _embed = message.decode()
                    message.ack()
                    self.celery.tasks[name](*args, **kwargs)
                    ran += 1
                    found = True
                for message in others:
                    message.requeue()
                if not found:
                    return ran

    def _messages(self) -> list[dict[str, str]]:
        self.deliver()
        return [
            {"to": message.recipients[0], "subject": message.subject, "body": message.body}
            for message in self.mailer.outbox
        ]

    def __getitem__(self, index: Any) -> Any:
        return self._messages()[index]

    def __len__(self) -> int:
        return len(self._messages())

    def __eq__(self, other: object) -> bool:
        return self._messages() == other

    def __repr__(self) -> str:
        return repr(self._messages())
