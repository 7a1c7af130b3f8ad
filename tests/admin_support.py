"""What the admin tests share: a person's browser session in WebTest (cookies, forms with the
CSRF token, flash messages after a redirect), and helpers that read rows back."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import webtest
from sqlalchemy.orm import Session

from apiclient import PASSWORD
from nproxy_core.audit.models import AuditEntry


class AdminBrowser:
    """One person's session on the real app: their own cookie jar, forms sent as a browser
    sends them (``csrf_token`` field), redirects read for the flash message."""

    def __init__(self, app: webtest.TestApp) -> None:
        self.app = webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"})

    def csrf(self) -> str:
        return self.app.get("/api/v1/session").json["csrf_token"]

    def login(self, email: str, password: str = PASSWORD) -> AdminBrowser:
        res = self.app.post(
            "/login", {"email": email, "password": password, "csrf_token": self.csrf()}
        )
        assert res.status_int == 303, res.text
        return self

    def get(self, url: str, **kw: Any) -> webtest.TestResponse:
        kw.setdefault("status", "*")
        return self.app.get(url, **kw)

    def post(self, url: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> Any:
        fields = dict(data or {})
        if csrf:
            fields["csrf_token"] = self.csrf()
        return self.app.post(url, fields, status="*")

    def act(self, url: str, data: dict[str, Any] | None = None) -> tuple[Any, list[str], list[str]]:
        """POST an admin action; (its 303 answer, success messages, error messages)."""
        res = self.post(url, data)
        assert res.status_int == 303, (res.status, res.text[:500])
        page = self.app.get(res.location, status="*")
        return res, alerts(page, "success"), alerts(page, "error")


def alerts(page: Any, kind: str) -> list[str]:
    return [" ".join(p.get_text().split()) for p in page.html.select(f"p.alert.{kind}")]


def audit_rows(db: Session, action: str | None = None) -> list[AuditEntry]:
    db.expire_all()
    query = sa.select(AuditEntry).order_by(AuditEntry.id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return list(db.scalars(query))


def make_generation(
    db: Session,
    user: Any,
    *,
    status: str = "succeeded",
    prompt: str = "a red bicycle",
    provider: str = "demo",
    batch_size: int = 1,
    created_at: Any = None,
    error_code: str | None = None,
) -> Any:
    """A finished (or queued) generation row with its conversation and message, committed."""
    from nproxy_core.db import utcnow
    from nproxy_core.generation.models import Conversation, Generation, Message
    from nproxy_core.plugins import Mode

    moment = created_at or utcnow()
    conversation = Conversation(user_id=user.id, title="t", created_at=moment, updated_at=moment)
    db.add(conversation)
    db.flush()
    message = Message(
        conversation_id=conversation.id,
        user_id=user.id,
        mode=Mode.TEXT_TO_IMAGE,
        prompt=prompt,
        resolution="square",
        batch_size=batch_size,
        input_upload_ids=[],
        provider=provider,
        model="demo-image-1",
        created_at=moment,
    )
    db.add(message)
    db.flush()
    generation = Generation(
        message_id=message.id,
        conversation_id=conversation.id,
        user_id=user.id,
        provider=provider,
        status=status,
        created_at=moment,
        enqueued_at=moment,
        finished_at=moment if status in ("succeeded", "failed", "partial") else None,
        error_code=error_code,
    )
    db.add(generation)
    db.commit()
    return generation


def make_payment(
    db: Session, user: Any, *, status: str = "waiting", review: str | None = None
) -> Any:
    """A payment row of the plan's price, flagged for review with ``review``, committed."""
    from decimal import Decimal

    from nproxy_core.billing.checkout import new_order_id
    from nproxy_core.billing.models import Payment

    payment = Payment(
        order_id=new_order_id(),
        user_id=user.id,
        processor="demo",
        amount=Decimal("9.99"),
        currency="USD",
        status=status,
    )
    if review:
        payment.flag_for_review(review)
    db.add(payment)
    db.commit()
    return payment
