"""The catalogs are complete (DESIGN 4.15): every message marked in the code, the templates and
the chat's JavaScript has a Russian and an Uzbek translation that keeps its placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "src" / "nproxy_core" / "locale"
#: The keywords of the README's ``pybabel extract``: gettext's, plus ``localizer.pluralize``.
KEYWORDS = {**DEFAULT_KEYWORDS, "pluralize": (1, 2)}
SKIPPED_FOLDERS = {".git", ".venv", "node_modules", "var", "test-artifacts", "tests", "docs"}
#: ``%(name)s`` (Jinja2, JavaScript), ``${name}`` (Pyramid), ``{name}`` (the customer bot).
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\$\{(\w+)\}|(?<![{$])\{(\w+)\}")
TAG = re.compile(r"</?\w+[^>]*>")


def marked_messages() -> dict[str, tuple[str, ...]]:
    """Every message marked in the sources, extracted by Babel as ``pybabel extract`` does."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: dict[str, tuple[str, ...]] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT,
        method_map,
        options_map,
        keywords=KEYWORDS,
        directory_filter=lambda path: Path(path).name not in SKIPPED_FOLDERS,
    ):
        forms = (message,) if isinstance(message, str) else tuple(message)
        found[forms[0]] = forms
    return found


def catalog(language: str):
    with (LOCALE / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source, locale=language)


def placeholders(text: str) -> set[str]:
    return {next(name for name in match.groups() if name) for match in PLACEHOLDER.finditer(text)}


def test_the_sources_mark_messages_for_every_customer_surface():
    found = marked_messages()
    # One from each kind of source: a template, Python, the chat's JavaScript, the bot.
    for message in (
        "Log in",
        "Wrong email or password.",
        "Copy prompt",
        "Choose the bot's language:",
    ):
        assert message in found


@pytest.mark.parametrize("language", ["ru", "uz"])
def test_every_marked_message_has_a_translation(language):
    translations = catalog(language)
    missing = []
    for msgid, forms in marked_messages().items():
        entry = translations.get(forms if len(forms) > 1 else msgid)
        strings = () if entry is None else entry.string
        strings = (strings,) if isinstance(strings, str) else tuple(strings)
        if entry is None or entry.fuzzy or not strings or not all(strings):
            missing.append(msgid)
    assert not missing, f"{len(missing)} messages lack a {language} translation: {missing}"


@pytest.mark.parametrize("language", ["ru", "uz"])
def test_translations_keep_every_placeholder_and_tag(language):
    wrong = []
    for entry in catalog(language):
        if not entry.id or not entry.string:
            continue
        ids = (entry.id,) if isinstance(entry.id, str) else tuple(entry.id)
        strings = (entry.string,) if isinstance(entry.string, str) else tuple(entry.string)
        expected = set().union(*(placeholders(i) for i in ids))
        tags = sorted(TAG.findall(ids[0]))
        for text in strings:
            if placeholders(text) != expected or sorted(TAG.findall(text)) != tags:
                wrong.append((ids[0], text))
    assert not wrong, f"{language} translations that change placeholders or tags: {wrong}"


@pytest.mark.parametrize("language", ["ru", "uz"])
def test_plural_forms_are_the_languages_own(language):
    translations = catalog(language)
    assert translations.num_plurals == {"ru": 3, "uz": 2}[language]
    for entry in translations:
        if entry.id and not isinstance(entry.id, str):
            assert len(entry.string) == translations.num_plurals, entry.id


TRANS_BLOCK = re.compile(r"\{%-?\s*trans\b([^%]*)-?%\}(.*?)\{%-?\s*endtrans", re.S)
PLURALIZE = re.compile(r"\{%-?\s*pluralize\s*(\w*)\s*-?%\}")


def test_a_templates_plural_counts_by_its_count():
    # Without a name, {% pluralize %} counts by the block's first value: a date or a name
    # there makes the page fail in Russian and Uzbek (their plural rule needs a number).
    wrong = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        for values, body in TRANS_BLOCK.findall(path.read_text()):
            plural = PLURALIZE.search(body)
            if plural is None:
                continue
            counted = plural.group(1) or values.split("=")[0].strip()
            if counted not in ("count", "num"):
                wrong.append(f"{path.relative_to(ROOT)}: counts by {counted!r}")
    assert not wrong, wrong
