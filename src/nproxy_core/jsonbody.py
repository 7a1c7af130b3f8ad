"""Reading a JSON request body: the one way every JSON route gets its input."""

from __future__ import annotations

from typing import Any

from nproxy_core.errors import ValidationError


def json_object(request: Any, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; with ``empty_ok`` an empty body counts as ``{}``."""
    if empty_ok and not request.body:
        return {}
    try:
        body = request.json_body
    except ValueError:
        raise ValidationError("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.")
    return body
