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
    for name in ("bot.py", "stars.py", "services.py", "forms.py"):
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


def test_a_count_of_images_takes_each_languages_plural_form():
    said = {
        language: [texts.text("done", language, count=n) for n in (1, 3, 5, 21)]
        for language in ("en", "ru", "uz")
    }
    assert said["en"] == [
        "Done: 1 image.",
        "Done: 3 images.",
        "Done: 5 images.",
        "Done: 21 images.",
    ]
    assert said["ru"] == [
        "Готово: 1 изображение.",
        "Готово: 3 изображения.",
        "Готово: 5 изображений.",
        "Готово: 21 изображение.",
    ]
    assert said["uz"] == [f"Tayyor: {n} ta rasm." for n in (1, 3, 5, 21)]


def test_the_template_forms_words_read_in_russian_and_uzbek():
    values = {"label": "L", "limit": 300, "options": "A, B", "title": "T", "description": "D"}
    for key in (
        "templates_pick",
        "template_start",
        "ask_select",
        "ask_text",
        "ask_image",
        "form_pick_option",
        "form_too_long",
        "form_button_stale",
        "form_cancelled",
        "btn_skip",
        "cmd_templates",
    ):
        english = texts.text(key, "en", **values)
        assert texts.text(key, "ru", **values) != english, key
        assert texts.text(key, "uz", **values) != english, key
