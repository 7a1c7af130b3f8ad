"""Account rules: registration, authentication, and password reset by emailed token."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nproxy_core.accounts.models import PasswordResetToken, Role, User
from nproxy_core.accounts.schemas import check_new_password, normalize_email
from nproxy_core.accounts.sessions import end_sessions
from nproxy_core.db import utcnow
from nproxy_core.errors import Forbidden, NotAuthenticated, ValidationError

RESET_TOKEN_LIFETIME = dt.timedelta(hours=1)

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
            "The current password is not right.", fields={"current_password": "wrong"}
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
    user = find_user(db, email)
    if user is None:
        _hasher.verify(_dummy_hash(_hasher), _DUMMY_PASSWORD)
        raise NotAuthenticated("Wrong email or password.")
    if not verify_password(user, password):
        raise NotAuthenticated("Wrong email or password.")
    if user.is_blocked:
        raise Forbidden("This account is blocked. Contact support.")
    user.last_login_at = utcnow()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_password_reset(db: Session, email: str) -> tuple[User, str] | None:
    """A new single-use token for the account, or None when there is no such account."""
    user = find_user(db, email)
    if user is None or user.is_blocked:
        return None
    token = secrets.token_urlsafe(32)
    db.add(
        PasswordResetToken(
            user=user,
            token_hash=_token_hash(token),
            expires_at=utcnow() + RESET_TOKEN_LIFETIME,
        )
    )
    return user, token


def finish_password_reset(db: Session, token: str, password: str) -> User:
    password = check_new_password(password)
    invalid = ValidationError(
        "This reset link is invalid or has expired. Ask for a new one.",
        fields={"token": "invalid"},
    )
    if not token or len(token) > 200:
        raise invalid
    # Lock the row so two concurrent confirmations cannot both use it.
    row = db.scalar(
        sa.select(PasswordResetToken)
        .where(PasswordResetToken.token_hash == _token_hash(token))
        .with_for_update()
    )
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise invalid
    user = row.user
    set_password(db, user, password)
    # Every outstanding token of the account dies with this one.
    db.execute(
        sa.update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )
    return user
