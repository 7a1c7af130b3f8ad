"""Input checks for account forms and JSON bodies. Each failure names the field at fault."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from email_validator import EmailNotValidError, validate_email

from nproxy_core.errors import ValidationError
from nproxy_core.i18n import _
from nproxy_core.jsonbody import check_json_value

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 254


def normalize_email(value: Any) -> str:
    """A plausible address, trimmed and lower-cased, or ValidationError saying what is wrong.

    Syntax only (email-validator, without DNS): no display names or angle brackets, no quoted
    local parts, no spaces or control characters, a domain with a dot. Deliverability is proven
    by the mail itself. An internationalised domain is kept in its Unicode form, so the same
    address written in punycode is the same account.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(_("Enter your email address."), fields={"email": "required"})
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValidationError(_("That email address is too long."), fields={"email": "invalid"})
    try:
        checked = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError(
            _("That does not look like an email address: ${reason}", mapping={"reason": str(exc)}),
            fields={"email": "invalid"},
        ) from None
    return checked.normalized.lower()


def check_new_password(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(_("Enter a password."), fields={"password": "required"})
    check_text(value, "password", "The password")
    if len(value) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            _(
                "The password must be at least ${count} characters long.",
                mapping={"count": MIN_PASSWORD_LENGTH},
            ),
            fields={"password": "too_short"},
        )
    if len(value) > MAX_PASSWORD_LENGTH:
        raise ValidationError(_("The password is too long."), fields={"password": "too_long"})
    return value


def check_text(value: str, field: str, label: str) -> None:
    """Refuse NUL and lone surrogates in ``value``, whatever route it came by."""
    try:
        check_json_value(value)
    except ValidationError:
        raise ValidationError(
            f"{label} holds a character that is not allowed.", fields={field: "invalid"}
        ) from None


def required_string(data: Mapping[str, Any], name: str, label: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationError(f"Enter {label}.", fields={name: "required"})
    check_text(value, name, label[0].upper() + label[1:])
    return value
