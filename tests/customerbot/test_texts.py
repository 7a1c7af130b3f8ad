"""Every text the customer bot sends comes from one table of templates with named fields."""

from __future__ import annotations

import ast
import string
from pathlib import Path

from nproxy_core.customerbot import texts

SOURCES = Path(texts.__file__).parent


def test_every_template_has_only_named_fields_and_fills():
    for key, template in texts.TEXTS.items():
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        assert all(name.isidentifier() for name in names), key
        assert texts.text(key, **dict.fromkeys(names, "x"))


def test_every_key_the_handlers_use_exists():
    used: set[str] = set()
    for name in ("bot.py", "stars.py", "services.py"):
        tree = ast.parse((SOURCES / name).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = getattr(func, "attr", None) or getattr(func, "id", None)
            first = node.args[1] if called == "say" and len(node.args) > 1 else node.args[0]
            if called in ("text", "say", "Refused") and isinstance(first, ast.Constant):
                used.add(first.value)
    assert used and used <= set(texts.TEXTS), used - set(texts.TEXTS)
