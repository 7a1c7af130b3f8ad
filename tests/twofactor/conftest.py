"""What the two-factor tests share: the service as the app builds it (the same secret box),
a clock that stays put, and an account enrolled with a known secret."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from nproxy_core.config import server_secrets
from nproxy_core.db import utcnow
from nproxy_core.keypool.crypto import SecretBox
from nproxy_core.twofactor import codes
from nproxy_core.twofactor.services import TwoFactor

STEP = dt.timedelta(seconds=30)


def steady_now() -> dt.datetime:
    """Now, at least a second and a half from a change of TOTP step, so that a code computed
    here is still the current one when the app checks it (waits at most 3 s, on the clock)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        into = time.time() % 30
        if 1.5 <= into <= 27:
            return utcnow()
        time.sleep(0.05)
    raise AssertionError("the clock did not move")


@dataclass
class Enrolled:
    user: Any
    secret: str
    recovery_codes: list[str]

    def code(self, steps: int = 0, at: dt.datetime | None = None) -> str:
        """The app's code ``steps`` steps from now (or from ``at``)."""
        return codes.code_at(self.secret, (at or utcnow()) + steps * STEP)


@pytest.fixture
def box(base_settings: dict[str, Any]) -> SecretBox:
    return SecretBox.from_secrets(server_secrets(base_settings))


@pytest.fixture
def service(box: SecretBox) -> TwoFactor:
    return TwoFactor(box)


@pytest.fixture
def enrol(db: Any, service: TwoFactor) -> Callable[..., Enrolled]:
    """Turn two-factor login on for ``user`` as the set-up page does, with the code of the
    previous step: the current and the next step's codes stay unused for the test."""
    from nproxy_core.audit import Actor, Surface

    def factory(user: Any) -> Enrolled:
        enrolment = service.start(db, user)
        now = steady_now()
        recovery = service.confirm(
            db,
            user,
            codes.code_at(enrolment.secret, now - STEP),
            actor=Actor.of_user(user, Surface.WEB),
        )
        db.commit()
        return Enrolled(user, enrolment.secret, recovery)

    return factory
