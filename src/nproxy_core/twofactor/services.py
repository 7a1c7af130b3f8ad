"""Two-factor login's service: enrolment, the code check at login, recovery codes, and the
operator's reset. Registered for :class:`~.interfaces.ITwoFactor` and, for login,
:class:`~nproxy_core.accounts.interfaces.ISecondFactor`.

Every code is accepted by one conditional UPDATE (a TOTP time step later than the last one
used; a recovery code not used yet), so two logins racing with the same code cannot both win:
the second waits for the first's row lock and then matches nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.accounts.interfaces import ISecondFactor
from nproxy_core.accounts.models import User
from nproxy_core.audit import Actor
from nproxy_core.db import utcnow
from nproxy_core.errors import APIError, Conflict, NotFound, ValidationError
from nproxy_core.i18n import _
from nproxy_core.keypool.crypto import SecretUnreadable
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.twofactor import codes
from nproxy_core.twofactor.interfaces import ITwoFactor
from nproxy_core.twofactor.models import RecoveryCode, TotpCredential

log = logging.getLogger(__name__)

ISSUER = "nproxy"


class WrongCode(ValidationError):
    def __init__(self) -> None:
        super().__init__(
            _(
                "That code is not right, or it was used already. Enter the code your app shows "
                "now, or one of your recovery codes."
            ),
            fields={"otp": "invalid"},
        )


class TwoFactorUnreadable(APIError, status=503, code="service_unavailable"):
    """The stored TOTP secret opens with no known server secret: the operator changed
    NPROXY_SECRET without keeping the old one. Nobody's fault but the configuration's."""


@dataclass(frozen=True)
class TwoFactorStatus:
    enabled: bool
    enabled_at: dt.datetime | None = None
    recovery_codes_left: int = 0
    #: A set-up was started and not confirmed yet.
    enrolling: bool = False


@dataclass(frozen=True)
class Enrolment:
    """What the set-up page shows: the secret for typing, and the QR code of its URI."""

    secret: str
    uri: str
    qr_svg: str

    @property
    def grouped_secret(self) -> str:
        return codes.grouped(self.secret)


def _state(enabled: bool) -> dict[str, Any]:
    return {"two_factor": enabled}


@implementer(ITwoFactor, ISecondFactor)
class TwoFactor:
    def __init__(
        self,
        box: Any,
        *,
        issuer: str = ISSUER,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.box = box
        self.issuer = issuer
        self.clock = clock

    # --- reading ------------------------------------------------------------------------------

    def _credential(
        self, db: Session, user_id: int, *, lock: bool = False
    ) -> TotpCredential | None:
        query = sa.select(TotpCredential).where(TotpCredential.user_id == user_id)
        if lock:
            query = query.with_for_update()
        return db.scalar(query.execution_options(populate_existing=True))

    def is_enabled(self, db: Session, user_id: int) -> bool:
        return bool(
            db.scalar(
                sa.select(
                    sa.exists().where(
                        TotpCredential.user_id == user_id,
                        TotpCredential.confirmed_at.is_not(None),
                    )
                )
            )
        )

    def status(self, db: Session, user_id: int) -> TwoFactorStatus:
        credential = self._credential(db, user_id)
        if credential is None:
            return TwoFactorStatus(enabled=False)
        if not credential.is_confirmed:
            return TwoFactorStatus(enabled=False, enrolling=True)
        left = db.scalar(
            sa.select(sa.func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        )
        return TwoFactorStatus(
            enabled=True, enabled_at=credential.confirmed_at, recovery_codes_left=left or 0
        )

    def _secret(self, credential: TotpCredential) -> str:
        try:
            secret, current = self.box.open(credential.secret_encrypted)
        except SecretUnreadable:
            log.error("the TOTP secret of user %s opens with no known secret", credential.user_id)
            raise TwoFactorUnreadable(
                _(
                    "Two-factor codes cannot be checked right now: the server's configuration "
                    "changed. Please contact the operator."
                )
            ) from None
        if not current:
            # Stored under a previous NPROXY_SECRET: kept readable after that one is dropped.
            credential.secret_encrypted = self.box.encrypt(secret)
        return secret

    # --- the check at login ---------------------------------------------------------------------

    def verify(
        self, db: Session, user_id: int, code: Any, *, now: dt.datetime | None = None
    ) -> bool:
        cleaned = codes.clean_code(code)
        if cleaned is None:
            return False
        now = now or self.clock()
        if codes.is_totp_code(cleaned):
            credential = self._credential(db, user_id)
            if credential is None or not credential.is_confirmed:
                return False
            step = codes.matching_step(self._secret(credential), cleaned, now)
            return step is not None and self._use_step(db, credential.id, step)
        key = codes.recovery_code_key(cleaned)
        if key is None:
            return False
        used = db.execute(
            sa.update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == codes.recovery_code_hash(key),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return used.rowcount == 1

    @staticmethod
    def _use_step(db: Session, credential_id: int, step: int) -> bool:
        """Record ``step`` as the last one used, if it is later than the last one: the one
        UPDATE that makes a code single-use."""
        result = db.execute(
            sa.update(TotpCredential)
            .where(
                TotpCredential.id == credential_id,
                sa.or_(
                    TotpCredential.last_used_step.is_(None),
                    TotpCredential.last_used_step < step,
                ),
            )
            .values(last_used_step=step)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    # --- enrolment ------------------------------------------------------------------------------

    def enrolment(self, db: Session, user: User) -> Enrolment | None:
        credential = self._credential(db, user.id)
        if credential is None or credential.is_confirmed:
            return None
        secret = self._secret(credential)
        uri = codes.provisioning_uri(secret, user.email, self.issuer)
        return Enrolment(secret=secret, uri=uri, qr_svg=codes.qr_svg(uri))

    def start(self, db: Session, user: User) -> Enrolment:
        credential = self._credential(db, user.id, lock=True)
        if credential is not None and credential.is_confirmed:
            raise Conflict(
                _("Two-factor login is already on. Turn it off first to move it to another app.")
            )
        encrypted = self.box.encrypt(codes.new_secret())
        if credential is None:
            try:
                with db.begin_nested():
                    db.add(TotpCredential(user_id=user.id, secret_encrypted=encrypted))
                    db.flush()
            except IntegrityError:
                raise Conflict(
                    _("A set-up was started at the same time in another window. Reload the page.")
                ) from None
        else:
            # A new secret each time: one shown before may have been seen by someone else.
            credential.secret_encrypted = encrypted
            credential.created_at = self.clock()
            credential.last_used_step = None
            db.flush()
        enrolment = self.enrolment(db, user)
        assert enrolment is not None
        return enrolment

    def confirm(self, db: Session, user: User, code: Any, *, actor: Actor) -> list[str]:
        credential = self._credential(db, user.id, lock=True)
        if credential is None:
            raise Conflict(_("Start the set-up first: there is no new secret to confirm."))
        if credential.is_confirmed:
            raise Conflict(_("Two-factor login is already on."))
        cleaned = codes.clean_code(code)
        if cleaned is None:
            raise ValidationError(
                _("Enter the 6-digit code your app shows."), fields={"otp": "required"}
            )
        now = self.clock()
        step = codes.matching_step(self._secret(credential), cleaned, now)
        if step is None:
            raise ValidationError(
                _(
                    "That code is not right. Check that the app's clock is right, and enter the "
                    "6-digit code it shows now."
                ),
                fields={"otp": "invalid"},
            )
        credential.confirmed_at = now
        credential.last_used_step = step
        recovery = self._new_recovery_codes(db, user.id)
        actor.record(db, "twofactor.enable", "user", user.id, _state(False), _state(True))
        return recovery

    def _new_recovery_codes(self, db: Session, user_id: int) -> list[str]:
        db.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        fresh = codes.new_recovery_codes()
        for code in fresh:
            key = codes.recovery_code_key(code.replace("-", ""))
            assert key is not None
            db.add(RecoveryCode(user_id=user_id, code_hash=codes.recovery_code_hash(key)))
        db.flush()
        return fresh

    def _require_code(self, db: Session, user: User, code: Any) -> None:
        if not self.is_enabled(db, user.id):
            raise Conflict(_("Two-factor login is off."))
        if codes.clean_code(code) is None:
            raise ValidationError(
                _("Enter the code your app shows now, or one of your recovery codes."),
                fields={"otp": "required"},
            )
        if not self.verify(db, user.id, code):
            raise WrongCode()

    def disable(self, db: Session, user: User, code: Any, *, actor: Actor) -> None:
        self._require_code(db, user, code)
        self._remove(db, user.id)
        actor.record(db, "twofactor.disable", "user", user.id, _state(True), _state(False))

    def regenerate(self, db: Session, user: User, code: Any, *, actor: Actor) -> list[str]:
        self._require_code(db, user, code)
        fresh = self._new_recovery_codes(db, user.id)
        actor.record(db, "twofactor.recovery_codes", "user", user.id, None, {"codes": len(fresh)})
        return fresh

    @staticmethod
    def _remove(db: Session, user_id: int) -> None:
        db.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        db.execute(sa.delete(TotpCredential).where(TotpCredential.user_id == user_id))

    # --- the operator's reset -------------------------------------------------------------------

    def reset(self, db: Session, user_id: int, *, actor: Actor) -> None:
        user = db.get(User, user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        credential = self._credential(db, user_id, lock=True)
        if credential is None:
            raise Conflict(f"{user.email} has no two-factor login to reset")
        enabled = credential.is_confirmed
        self._remove(db, user_id)
        actor.record(db, "user.reset_2fa", "user", user_id, _state(enabled), _state(False))


def make_two_factor(request: Any) -> TwoFactor:
    """The service, built once from the key pool's secret box (the same keys at rest)."""
    return TwoFactor(request.find_service(ISecretBox))


# --- a change of NPROXY_SECRET (DESIGN 4.11) -----------------------------------------------------


@dataclass(frozen=True)
class SecretRotation:
    #: TOTP secrets re-encrypted with the current server secret.
    rotated: int
    #: Already encrypted with it.
    current: int


def rotate_totp_secrets(db: Session, box: Any) -> SecretRotation:
    """Re-encrypt every stored TOTP secret with the current server secret, in the caller's
    transaction (``nproxy secrets rotate``), so that the old secret can be dropped without
    locking anyone out. Running it again changes nothing; refuses before any change when a
    secret opens with no known server secret (Conflict naming the accounts)."""
    credentials = list(
        db.scalars(sa.select(TotpCredential).order_by(TotpCredential.id).with_for_update())
    )
    opened, unreadable = [], []
    for credential in credentials:
        try:
            opened.append((credential, *box.open(credential.secret_encrypted)))
        except SecretUnreadable:
            unreadable.append(credential.user_id)
    if unreadable:
        listed = ", ".join(str(i) for i in unreadable[:20]) + (
            ", …" if len(unreadable) > 20 else ""
        )
        raise Conflict(
            f"the two-factor secrets of users {listed} cannot be decrypted with NPROXY_SECRET "
            "nor NPROXY_SECRET_PREVIOUS; nothing was changed (list the secret used before in "
            "NPROXY_SECRET_PREVIOUS, or reset their two-factor login: nproxy users reset-2fa)"
        )
    rotated = 0
    for credential, secret, current in opened:
        if not current:
            credential.secret_encrypted = box.encrypt(secret)
            rotated += 1
    db.flush()
    return SecretRotation(rotated=rotated, current=len(opened) - rotated)
