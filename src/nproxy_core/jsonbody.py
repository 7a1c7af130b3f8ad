"""Reading a JSON request body: the one way every JSON route gets its input.

JSON can carry what no column or template should ever see: ``\\u0000`` (PostgreSQL refuses it
in text), lone surrogates such as ``\\ud800`` (no UTF-8 encoding exists for them) and nesting
deep enough to exhaust the parser's recursion. All are refused here, once, with a 400.
"""

from __future__ import annotations

from typing import Any

from nproxy_core.errors import ValidationError
from nproxy_core.i18n import _

#: Deepest nesting of arrays and objects accepted; real bodies are two or three levels deep.
MAX_DEPTH = 32


def _bad_text(value: str) -> str | None:
    """What is wrong with ``value``: ``nul`` or ``surrogate``; None when nothing is."""
    if "\x00" in value:
        return "nul"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "surrogate"
    return None


def check_json_value(body: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise ValidationError if any key or string in ``body`` holds NUL or a lone surrogate,
    or if it nests deeper than ``max_depth``; bad text names the top-level field it is in.
    Iterative: a deep body cannot recurse here."""
    stack: list[tuple[Any, int, str | None]] = [(body, 1, None)]
    while stack:
        value, depth, field = stack.pop()
        if isinstance(value, str):
            _refuse_bad_text(value, field)
        elif isinstance(value, dict | list):
            if depth > max_depth:
                raise ValidationError(
                    _(
                        "The JSON body is nested deeper than ${max_depth} levels.",
                        mapping={"max_depth": max_depth},
                    )
                )
            if isinstance(value, dict):
                for key, item in value.items():
                    _refuse_bad_text(key, field)
                    # A field is named only by a short key (its text is sane by now).
                    inner = key if field is None and len(key) <= 64 else field
                    stack.append((item, depth + 1, inner))
            else:
                stack.extend((item, depth + 1, field) for item in value)


def _refuse_bad_text(value: str, field: str | None) -> None:
    problem = _bad_text(value)
    if problem is None:
        return
    # One whole sentence per case, so that each language can say it its own way.
    if field is None:
        raise ValidationError(
            _("The request body holds a NUL character.")
            if problem == "nul"
            else _("The request body holds a lone surrogate (text that is not valid Unicode).")
        )
    mapping = {"field": field}
    raise ValidationError(
        _("The field '${field}' holds a NUL character.", mapping=mapping)
        if problem == "nul"
        else _(
            "The field '${field}' holds a lone surrogate (text that is not valid Unicode).",
            mapping=mapping,
        ),
        fields={field: "invalid"},
    )


def json_object(request: Any, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; with ``empty_ok`` an empty body counts as ``{}``."""
    if empty_ok and not request.body:
        return {}
    try:
        body = request.json_body
    except ValueError:
        # Also a body that does not decode in its declared charset (UnicodeDecodeError).
        raise ValidationError(_("The request body is not valid JSON.")) from None
    except RecursionError:
        raise ValidationError(
            _(
                "The JSON body is nested deeper than ${max_depth} levels.",
                mapping={"max_depth": MAX_DEPTH},
            )
        ) from None
    if not isinstance(body, dict):
        raise ValidationError(_("The request body must be a JSON object."))
    check_json_value(body)
    return body
