"""JSON that keeps every number's exact text, for signed IPN bodies and exact invoice amounts.

The stdlib turns ``0.00012345678901234567`` into a binary float and writes it back with other
digits; a signature over that text would then never match. Here numbers are parsed into
:class:`JsonNumber` (a ``str`` holding the wire text) and written back verbatim.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

__all__ = ["JsonNumber", "WireJsonError", "dumps_exact", "loads_exact", "plain"]

# Python keeps an escaped UTF-16 pair as one code point, so any surrogate left in a str is lone.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What JavaScript treats as an array index: such keys are enumerated first, numerically.
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_MAX_ARRAY_INDEX = 2**32 - 2


class WireJsonError(ValueError):
    """The text is not JSON this module accepts (syntax error, NaN or Infinity)."""


class JsonNumber(str):
    """A JSON number as the exact text it had on the wire, e.g. ``"10.0"`` or ``"1e-7"``."""

    __slots__ = ()

    def to_decimal(self) -> Decimal:
        return Decimal(self)


def _reject_constant(name: str) -> Any:
    raise WireJsonError(f"{name} is not a JSON number")


def loads_exact(text: str | bytes) -> Any:
    """Parse JSON, keeping numbers as :class:`JsonNumber`; NaN and Infinity are refused."""
    try:
        return json.loads(
            text,
            parse_float=JsonNumber,
            parse_int=JsonNumber,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        if isinstance(exc, WireJsonError):
            raise
        raise WireJsonError(str(exc)) from exc


def _js_key_order(keys: Iterable[str]) -> list[str]:
    """Keys in the order ``JSON.stringify`` writes an object built by NOWPayments' sortObject.

    ``Object.keys(obj).sort()`` compares UTF-16 code units; re-inserting the keys into a fresh
    object then moves array-index keys ("0", "2", "10") to the front in numeric order.
    """
    keys = list(keys)
    indexes = sorted(
        (k for k in keys if _ARRAY_INDEX.fullmatch(k) and int(k) <= _MAX_ARRAY_INDEX),
        key=int,
    )
    index_set = set(indexes)
    names = sorted(
        (k for k in keys if k not in index_set),
        key=lambda k: k.encode("utf-16-be", "surrogatepass"),
    )
    return indexes + names


def _string(value: str, ensure_ascii: bool) -> str:
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    if not ensure_ascii:
        # JSON.stringify writes lone surrogates as \udXXX escapes (and they are not UTF-8).
        text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def _number(value: Decimal) -> str:
    if not value.is_finite():
        raise WireJsonError(f"{value} is not a JSON number")
    # Fixed-point: "9.99" stays "9.99" and "1E+1" becomes "10" rather than exponent text.
    return format(value, "f")


def dumps_exact(value: Any, *, sort_keys: bool = False, ensure_ascii: bool = False) -> str:
    """Serialise without whitespace; :class:`JsonNumber` verbatim, ``Decimal`` exactly.

    With ``sort_keys`` objects are ordered recursively as NOWPayments' reference code does.
    Binary floats are refused: an amount must never pick up a float's extra digits.
    """

    def write(node: Any) -> str:
        if isinstance(node, JsonNumber):
            return str.__str__(node)
        if isinstance(node, str):
            return _string(node, ensure_ascii)
        if node is None:
            return "null"
        if node is True:
            return "true"
        if node is False:
            return "false"
        if isinstance(node, int):
            return str(int(node))
        if isinstance(node, Decimal):
            return _number(node)
        if isinstance(node, Mapping):
            keys = list(node)
            if not all(isinstance(k, str) for k in keys):
                raise WireJsonError("JSON object keys must be strings")
            if sort_keys:
                keys = _js_key_order(keys)
            items = (f"{_string(k, ensure_ascii)}:{write(node[k])}" for k in keys)
            return "{" + ",".join(items) + "}"
        if isinstance(node, list | tuple):
            return "[" + ",".join(write(item) for item in node) + "]"
        raise WireJsonError(f"cannot write {type(node).__name__} as exact JSON")

    return write(value)


def plain(value: Any) -> Any:
    """The same data with :class:`JsonNumber` turned into ordinary ``str`` (JSON-serialisable)."""
    if isinstance(value, JsonNumber):
        return str.__str__(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
