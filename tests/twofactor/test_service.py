"""The two-factor service on the real database: a code works once (also when two logins race
with it), a recovery code works once, the secret is encrypted at rest."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from zope.interface.verify import verifyObject

from nproxy_core.accounts.interfaces import ISecondFactor
from nproxy_core.audit import Actor, Surface
from nproxy_core.db import utcnow
from nproxy_core.errors import Conflict, ValidationError
from nproxy_core.keypool.crypto import SecretBox
from nproxy_core.twofactor import codes
from nproxy_core.twofactor.interfaces import ITwoFactor
from nproxy_core.twofactor.models import RecoveryCode, TotpCredential
from nproxy_core.twofactor.services import TwoFactor, TwoFactorUnreadable

from .conftest import STEP, steady_now


def test_the_service_provides_both_interfaces(service):
    assert verifyObject(ITwoFactor, service) and verifyObject(ISecondFactor, service)


def test_the_app_registers_the_service_for_both_interfaces(registry):
    from conftest import registry_service

    assert isinstance(registry_service(registry, ITwoFactor), TwoFactor)
    assert isinstance(registry_service(registry, ISecondFactor), TwoFactor)


def test_the_secret_is_encrypted_at_rest(db, service, user_factory, enrol, box):
    enrolled = enrol(user_factory())
    raw = db.execute(sa.text("SELECT secret_encrypted FROM totp_credentials")).scalar_one()
    assert raw != enrolled.secret and enrolled.secret not in raw
    assert box.decrypt(raw) == enrolled.secret
    # Another server secret opens nothing.
    with pytest.raises(Exception, match="cannot be decrypted"):
        SecretBox("another-secret-" + "y" * 40).decrypt(raw)


def test_a_pending_enrolment_protects_nothing_until_a_first_code(db, service, user_factory):
    user = user_factory()
    enrolment = service.start(db, user)
    db.commit()
    assert not service.is_enabled(db, user.id)
    assert service.status(db, user.id).enrolling
    # Its codes log nobody in before it is confirmed.
    assert not service.verify(db, user.id, codes.code_at(enrolment.secret, utcnow()))


def test_confirming_needs_a_good_code_and_shows_ten_recovery_codes(db, service, user_factory):
    user = user_factory()
    enrolment = service.start(db, user)
    actor = Actor.of_user(user, Surface.WEB)
    with pytest.raises(ValidationError) as refused:
        service.confirm(db, user, "12345x", actor=actor)
    assert refused.value.fields == {"otp": "invalid"}
    assert not service.is_enabled(db, user.id)
    recovery = service.confirm(db, user, codes.code_at(enrolment.secret, utcnow()), actor=actor)
    db.commit()
    assert len(recovery) == 10 and service.is_enabled(db, user.id)
    stored = db.scalars(sa.select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10
    assert not set(stored) & {c.replace("-", "") for c in recovery}
    assert service.status(db, user.id).recovery_codes_left == 10


def test_a_new_enrolment_while_it_is_on_is_refused(db, service, user_factory, enrol):
    enrolled = enrol(user_factory())
    with pytest.raises(Conflict):
        service.start(db, enrolled.user)


def test_starting_again_replaces_the_secret_shown(db, service, user_factory):
    user = user_factory()
    first = service.start(db, user).secret
    second = service.start(db, user).secret
    db.commit()
    assert first != second
    assert db.scalar(sa.select(sa.func.count()).select_from(TotpCredential)) == 1


def test_a_code_is_refused_the_second_time(db, service, user_factory, enrol):
    enrolled = enrol(user_factory())
    now = steady_now()
    code = enrolled.code(at=now)
    assert service.verify(db, enrolled.user.id, code, now=now)
    db.commit()
    assert not service.verify(db, enrolled.user.id, code, now=now)
    # Nor does an older code of the window work once a newer one was used.
    assert not service.verify(db, enrolled.user.id, enrolled.code(-1, at=now), now=now)
    assert service.verify(db, enrolled.user.id, enrolled.code(1, at=now), now=now)


@pytest.mark.parametrize(("steps", "accepted"), [(-1, True), (1, True), (-2, False), (2, False)])
def test_one_step_of_drift_is_accepted_at_login_and_two_are_not(
    db, service, user_factory, enrol, steps, accepted
):
    enrolled = enrol(user_factory())
    # Enrolment used the step before now; judge from a minute later, so -1 is still unused.
    later = steady_now() + 2 * STEP
    code = enrolled.code(steps, at=later)
    if not accepted and code in {enrolled.code(k, at=later) for k in (-1, 0, 1)}:
        pytest.skip("the far code happens to equal one in the window")
    assert service.verify(db, enrolled.user.id, code, now=later) is accepted


def test_a_recovery_code_works_once(db, service, user_factory, enrol):
    enrolled = enrol(user_factory())
    code = enrolled.recovery_codes[3]
    assert service.verify(db, enrolled.user.id, code.upper().replace("-", " "))
    db.commit()
    assert not service.verify(db, enrolled.user.id, code)
    assert service.status(db, enrolled.user.id).recovery_codes_left == 9
    # Another account's codes are not this one's.
    other = enrol(user_factory())
    assert not service.verify(db, enrolled.user.id, other.recovery_codes[0])


def test_a_secret_stored_under_a_previous_server_secret_is_read_and_re_encrypted(
    db, user_factory, enrol, base_settings
):
    enrolled = enrol(user_factory())
    current = base_settings["nproxy.secret"]
    rotated = TwoFactor(SecretBox("the-new-server-secret-" + "z" * 40, [current]))
    now = steady_now()
    assert rotated.verify(db, enrolled.user.id, enrolled.code(at=now), now=now)
    db.commit()
    raw = db.scalar(sa.select(TotpCredential.secret_encrypted))
    assert SecretBox("the-new-server-secret-" + "z" * 40).decrypt(raw) == enrolled.secret
    # Without the secret it was stored under, the check says so instead of failing blindly.
    lost = TwoFactor(SecretBox("yet-another-secret-" + "w" * 40))
    with pytest.raises(TwoFactorUnreadable):
        lost.verify(db, enrolled.user.id, enrolled.code(1, at=now), now=now)


def _race(engine: sa.Engine, attempt: Any, threads: int = 8) -> list[bool]:
    """Run ``attempt(session)`` in ``threads`` threads at once, each in its own transaction
    on its own connection; what each returned once it committed."""
    barrier = threading.Barrier(threads)
    results: list[bool] = []
    lock = threading.Lock()

    def run() -> None:
        with Session(bind=engine) as session:
            barrier.wait(timeout=30)
            ok = attempt(session)
            session.commit()
        with lock:
            results.append(ok)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(results) == threads
    return results


def test_concurrent_logins_with_the_same_code_exactly_one_wins(
    engine, service, user_factory, enrol
):
    enrolled = enrol(user_factory())
    now = steady_now()
    code = enrolled.code(at=now)
    results = _race(engine, lambda s: service.verify(s, enrolled.user.id, code, now=now))
    assert results.count(True) == 1


def test_concurrent_logins_with_the_same_recovery_code_exactly_one_wins(
    engine, service, user_factory, enrol
):
    enrolled = enrol(user_factory())
    code = enrolled.recovery_codes[0]
    results = _race(engine, lambda s: service.verify(s, enrolled.user.id, code))
    assert results.count(True) == 1


def test_disabling_and_new_recovery_codes_need_a_good_code(db, service, user_factory, enrol):
    enrolled = enrol(user_factory())
    actor = Actor.of_user(enrolled.user, Surface.WEB)
    for bad in (None, "", "000000x"):
        with pytest.raises(ValidationError):
            service.disable(db, enrolled.user, bad, actor=actor)
        with pytest.raises(ValidationError):
            service.regenerate(db, enrolled.user, bad, actor=actor)
    db.rollback()
    assert service.is_enabled(db, enrolled.user.id)
    now = steady_now()
    fresh = service.regenerate(db, enrolled.user, enrolled.code(at=now), actor=actor)
    db.commit()
    assert set(fresh).isdisjoint(enrolled.recovery_codes)
    assert not service.verify(db, enrolled.user.id, enrolled.recovery_codes[0])
    service.disable(db, enrolled.user, fresh[0], actor=actor)
    db.commit()
    assert not service.is_enabled(db, enrolled.user.id)
    assert db.scalar(sa.select(sa.func.count()).select_from(RecoveryCode)) == 0
    with pytest.raises(Conflict):
        service.disable(db, enrolled.user, fresh[1], actor=actor)
