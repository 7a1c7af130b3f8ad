"""Account rules: registration, authentication, and the emailed single-use tokens that reset a
password or verify an address."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
from typing import TypeVar

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nproxy_core.accounts.interfaces import ISecondFactor
from nproxy_core.accounts.models import (
    EmailVerificationToken,
    PasswordResetToken,
    Role,
    SingleUseToken,
    User,
)
from nproxy_core.accounts.schemas import check_new_password, normalize_email
from nproxy_core.accounts.sessions import end_sessions
from nproxy_core.db import utcnow
from nproxy_core.errors import Forbidden, NotAuthenticated, ValidationError
from nproxy_core.i18n import _

T = TypeVar("T", bound=SingleUseToken)

RESET_TOKEN_LIFETIME = dt.timedelta(hours=1)
VERIFICATION_TOKEN_LIFETIME = dt.timedelta(hours=24)

# argon2-cffi's defaults are Argon2id with the RFC 9106 low-memory profile.
_hasher = PasswordHasher()
_DUMMY_PASSWORD = "not a real password, only for timing"  # noqa: S105 - never a login


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Verified against when the email is unknown, so a login takes as long either way. Made
    with ``hasher``'s own cost, on first use: a process that never logs anyone in (a worker,
    a command) does not pay for a hash when it starts."""
    return hasher.hash(_DUMMY_PASSWORD)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def set_password(db: Session, user: User, password: str) -> None:
    """Change the password and end every session of the account (the caller may start one)."""
    user.password_hash = hash_password(password)
    user.session_version += 1
    end_sessions(db, user.id)


def change_password(db: Session, user: User, current: str, new: str) -> None:
    """A logged-in user's password change: the current password first, then the new one."""
    if not verify_password(user, current):
        raise ValidationError(
            _("The current password is not right."), fields={"current_password": "wrong"}
        )
    new = check_new_password(new)
    set_password(db, user, new)


def find_user(db: Session, email: str) -> User | None:
    return db.scalar(sa.select(User).where(User.email == email))


class EmailTaken(ValidationError):
    def __init__(self) -> None:
        super().__init__(
            "An account with this email already exists. Log in instead.",
            fields={"email": "taken"},
        )


def create_user(db: Session, email: str, password: str, *, role: Role = Role.USER) -> User:
    """Create an account; the database's unique index settles concurrent attempts."""
    email = normalize_email(email)
    password = check_new_password(password)
    if find_user(db, email) is not None:
        raise EmailTaken()
    user = User(email=email, password_hash=hash_password(password), role=role)
    try:
        with db.begin_nested():
            db.add(user)
            db.flush()
    except IntegrityError:
        raise EmailTaken() from None
    return user


def authenticate(db: Session, email: str, password: str) -> User:
    """The account whose password this is; the caller records the login once every factor
    passed (:func:`check_second_factor`)."""
    user = find_user(db, email)
    if user is None:
        _hasher.verify(_dummy_hash(_hasher), _DUMMY_PASSWORD)
        raise NotAuthenticated(_("Wrong email or password."))
    if not verify_password(user, password):
        raise NotAuthenticated(_("Wrong email or password."))
    if user.is_blocked:
        raise Forbidden(_("This account is blocked. Contact support."))
    return user


class OtpRequired(NotAuthenticated, code="otp_required"):
    """401 ``otp_required``: the password was right, the account has two-factor login, and the
    code (``otp``) is missing (``fields.otp == "required"``) or not good (``"invalid"``).
    Asked only after the password passed, so it tells nothing to someone without it."""

    def __init__(self, user: User, *, missing: bool) -> None:
        if missing:
            message = (
                "Enter the 6-digit code from your authenticator app, or one of your recovery codes."
            )
        else:
            message = (
                "That code is not right, or it was used already. Enter the code your app "
                "shows now, or one of your recovery codes."
            )
        super().__init__(message, fields={"otp": "required" if missing else "invalid"})
        self.user = user

    @property
    def missing(self) -> bool:
        return self.fields["otp"] == "required"


def check_second_factor(db: Session, factor: ISecondFactor, user: User, code: object) -> None:
    """Pass when the account has no two-factor login or ``code`` is good for it (and then
    used up); raise :class:`OtpRequired` otherwise."""
    if not factor.is_enabled(db, user.id):
        return
    if code is None or (isinstance(code, str) and not code.strip()):
        raise OtpRequired(user, missing=True)
    if not factor.verify(db, user.id, code):
        raise OtpRequired(user, missing=False)


def record_login(user: User) -> None:
    user.last_login_at = utcnow()


# --- single-use tokens sent by email -------------------------------------------------------------

# What issue_token makes (token_urlsafe(32): 43 characters), with room to spare. Anything else
# (empty, huge, NUL, a character no token has) is refused before it is hashed or looked up.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,200}")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    db: Session, model: type[T], user: User, lifetime: dt.timedelta, **values: object
) -> tuple[T, str]:
    """A new token row of ``model`` for ``user`` (its hash only), and the token for the mail."""
    token = secrets.token_urlsafe(32)
    row = model(user=user, token_hash=_token_hash(token), expires_at=utcnow() + lifetime, **values)
    db.add(row)
    return row, token


def claim_token(db: Session, model: type[T], token: object) -> T | None:
    """The row of ``model`` this token names, locked until commit so that two concurrent
    claims cannot both use it; None for a token that names none. The caller decides what an
    expired or used row means."""
    if not isinstance(token, str) or not _TOKEN_SHAPE.fullmatch(token):
        return None
    return db.scalar(
        sa.select(model)
        .where(model.token_hash == _token_hash(token))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _end_outstanding_tokens(db: Session, model: type[SingleUseToken], user: User) -> None:
    db.execute(
        sa.update(model)
        .where(model.user_id == user.id, model.used_at.is_(None))
        .values(used_at=utcnow())
    )


# --- password reset ----------------------------------------------------------------------------


def start_password_reset(db: Session, email: str) -> tuple[User, str] | None:
    """A new single-use token for the account, or None when there is no such account."""
    user = find_user(db, email)
    if user is None or user.is_blocked:
        return None
    _row, token = issue_token(db, PasswordResetToken, user, RESET_TOKEN_LIFETIME)
    return user, token


def finish_password_reset(db: Session, token: str, password: str) -> User:
    password = check_new_password(password)
    invalid = ValidationError(
        _("This reset link is invalid or has expired. Ask for a new one."),
        fields={"token": "invalid"},
    )
    row = claim_token(db, PasswordResetToken, token)
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise invalid
    user = row.user
    set_password(db, user, password)
    # Every outstanding token of the account dies with this one.
    _end_outstanding_tokens(db, PasswordResetToken, user)
    return user


# --- email verification (DESIGN 4.12) ----------------------------------------------------------


class VerificationLinkRefused(ValidationError):
    """A verification link that verifies nothing; ``reason`` says why, in the words the page
    uses: ``invalid`` (unknown, malformed, replaced by a newer link, or sent to an address the
    account no longer has), ``expired`` or ``used``."""

    MESSAGES = {
        "invalid": _(
            "This verification link is not valid. It may have been replaced by a newer one."
        ),
        "expired": _("This verification link has expired: links are valid for 24 hours."),
        "used": _("This verification link has already been used."),
    }

    def __init__(self, reason: str, user: User | None = None) -> None:
        super().__init__(self.MESSAGES[reason], fields={"token": reason})
        self.reason = reason
        #: The link's account, when the link names one (a used link's owner may be verified).
        self.user = user


def start_email_verification(db: Session, user: User) -> str:
    """A new verification token for the account's current address. It replaces every earlier
    link that was not used: only the newest mail verifies."""
    db.execute(
        sa.delete(EmailVerificationToken).where(
            EmailVerificationToken.user_id == user.id, EmailVerificationToken.used_at.is_(None)
        )
    )
    _row, token = issue_token(
        db, EmailVerificationToken, user, VERIFICATION_TOKEN_LIFETIME, email=user.email
    )
    return token


def verify_email(db: Session, token: object) -> User:
    """Mark the address the token was sent to as verified, once; the account it belongs to
    is the one verified, whoever opens the link."""
    row = claim_token(db, EmailVerificationToken, token)
    if row is None:
        raise VerificationLinkRefused("invalid")
    user = row.user
    if row.used_at is not None:
        raise VerificationLinkRefused("used", user)
    if row.email != user.email:
        raise VerificationLinkRefused("invalid")
    if row.expires_at <= utcnow():
        raise VerificationLinkRefused("expired", user)
    now = utcnow()
    row.used_at = now
    if user.email_verified_at is None:
        user.email_verified_at = now
    return user
