"""The package build compiles the translation catalogs (DESIGN 4.15): every ``messages.po``
under ``src/nproxy_core/locale`` becomes the ``messages.mo`` that Pyramid reads and the
``script.json`` that the chat's JavaScript reads (the strings found in ``.js`` files). Both are
made, never committed, by ``pip install .`` and ``pip install -e .`` alike."""

from __future__ import annotations

import json
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

LOCALE = Path(__file__).resolve().parent / "src" / "nproxy_core" / "locale"


def compile_catalogs(locale_dir: Path = LOCALE) -> list[Path]:
    """Write ``messages.mo`` and ``script.json`` next to each ``messages.po``; fuzzy and
    untranslated entries are left out (the English text shows instead)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po_path in sorted(locale_dir.glob("*/LC_MESSAGES/messages.po")):
        language = po_path.parent.parent.name
        with po_path.open("rb") as source:
            catalog = read_po(source, locale=language)
        mo_path = po_path.with_suffix(".mo")
        with mo_path.open("wb") as target:
            write_mo(target, catalog)
        script = {}
        for message in catalog:
            in_script = any(path.endswith(".js") for path, _line in message.locations)
            if not message.id or message.fuzzy or not in_script:
                continue
            if message.pluralizable:
                if all(message.string):
                    script[message.id[0]] = list(message.string)
            elif message.string:
                script[message.id] = message.string
        json_path = po_path.with_name("script.json")
        json_path.write_text(json.dumps(script, ensure_ascii=False, sort_keys=True), "utf-8")
        written += [mo_path, json_path]
    return written


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        compile_catalogs()
        super().run()


if __name__ == "__main__":
    setup(cmdclass={"build_py": BuildWithCatalogs})
