"""An account without an email (made in the customer bot) works where an email was assumed."""

from __future__ import annotations

from typing import Any

from nproxy_core.accounts.models import User
from nproxy_core.audit import Actor, Surface
from nproxy_core.notifications.mail import send_email
from nproxy_core.wiring import prepare_request


def test_audit_names_an_account_without_email_by_its_id():
    actor = Actor.of_user(User(id=41, email=None), Surface.WEB)
    assert actor.name == "user #41" and actor.user_id == 41


def test_no_mail_is_sent_to_an_account_without_email(registry: Any, outbox: Any):
    request = prepare_request(registry)
    with request.tm:
        send_email(request, None, "verify_email", {"link": "http://localhost/x"})
        send_email(request, "a@example.com", "verify_email", {"link": "http://localhost/x"})
    outbox.deliver()
    assert [mail["to"] for mail in outbox] == ["a@example.com"]
