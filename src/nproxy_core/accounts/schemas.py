"""Input checks for account forms and JSON bodies. Each failure names the field at fault."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nproxy_core.errors import ValidationError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
# Deliberately simple: one @, a dot in the domain, no spaces. Deliverability is proven by mail.
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")


def normalize_email(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("Enter your email address.", fields={"email": "required"})
    email = value.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email) or ".." in email.split("@")[1]:
        raise ValidationError(
            "That does not look like an email address.", fields={"email": "invalid"}
        )
    return email


def check_new_password(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("Enter a password.", fields={"password": "required"})
    if len(value) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.",
            fields={"password": "too_short"},
        )
    if len(value) > MAX_PASSWORD_LENGTH:
        raise ValidationError("The password is too long.", fields={"password": "too_long"})
    return value


def required_string(data: Mapping[str, Any], name: str, label: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationError(f"Enter {label}.", fields={name: "required"})
    return value
