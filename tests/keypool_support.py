"""What the key pool tests share: constants, row helpers and a scripted provider plugin."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nproxy_core.audit import Surface
from nproxy_core.db import utcnow
from nproxy_core.keypool import services
from nproxy_core.keypool.models import KeyAttempt, ProviderKey, Proxy
from nproxy_core.plugins import (
    AttemptResult,
    GeneratedImage,
    ImageRequest,
    Mode,
    ModelCapabilities,
    Provider,
    RateLimit,
    RetryableError,
)

ACTOR = services.Actor("tester@example.com", Surface.CLI)
IMAGE = ImageRequest(mode=Mode.TEXT_TO_IMAGE, prompt="a red bicycle", resolution="square")


def fresh_key(db: Session, key_id: int) -> ProviderKey:
    db.expire_all()
    key = db.get(ProviderKey, key_id)
    assert key is not None
    return key


def fresh_proxy(db: Session, proxy_id: int) -> Proxy:
    db.expire_all()
    proxy = db.get(Proxy, proxy_id)
    assert proxy is not None
    return proxy


def attempts(db: Session, key_id: int | None = None) -> list[KeyAttempt]:
    db.expire_all()
    query = sa.select(KeyAttempt).order_by(KeyAttempt.id)
    if key_id is not None:
        query = query.where(KeyAttempt.key_id == key_id)
    return list(db.scalars(query))


def set_key(db: Session, key_id: int, **values: Any) -> None:
    """Change a key row behind the router's back (the way another process would)."""
    db.execute(sa.update(ProviderKey).where(ProviderKey.id == key_id).values(**values))
    db.commit()


def expire_cooldown(db: Session, key_id: int) -> None:
    """Move time forward for one key: its cooldown deadline is now in the past."""
    set_key(db, key_id, cooldown_until=utcnow() - dt.timedelta(seconds=1))


class ScriptedProvider(Provider):
    """A provider plugin whose keys do what the test says: answer, hang, crash, answer 429
    (``limited...``), or report a balance. Installed into the app's enabled providers like any
    loaded plugin."""

    supports_balance = True

    def __init__(self, settings: Any = None, *, deadline: float = 5.0) -> None:
        super().__init__(settings or {})
        self.deadline = deadline
        self.calls: list[str] = []
        self.balances: dict[str, Decimal | None] = {}
        self.release = threading.Event()

    def capabilities(self) -> Sequence[ModelCapabilities]:
        return [
            ModelCapabilities(
                model="scripted", modes=(Mode.TEXT_TO_IMAGE,), resolutions=("square",)
            )
        ]

    @property
    def attempt_deadline(self) -> float:
        return self.deadline

    def generate(
        self, request: ImageRequest, *, api_key: str, proxy_url: str | None = None
    ) -> AttemptResult:
        self.calls.append(api_key)
        if api_key.startswith("hang"):
            self.release.wait(60)  # far past the deadline; released when the test ends
        if api_key.startswith("crash"):
            raise RuntimeError(f"plugin bug while using {api_key}")
        if api_key.startswith("limited"):
            raise RetryableError("quota exceeded", http_status=429, rate_limit=RateLimit.SHORT)
        return AttemptResult(
            image=GeneratedImage(data=b"\x89PNG fake", mime="image/png"),
            estimated_cost=Decimal("0.01"),
        )

    def check_balance(self, *, api_key: str, proxy_url: str | None = None) -> Decimal | None:
        if api_key.startswith("hang"):
            self.release.wait(60)
        return self.balances.get(api_key)
