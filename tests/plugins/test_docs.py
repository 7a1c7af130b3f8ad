"""docs/plugins.md shows the example package exactly: every file block is the file in
docs/example, and every file of the package is shown."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "docs" / "example"
BLOCK = re.compile(r"```\w+\n# file: (\S+)\n(.*?)```", re.S)


def shown_files() -> dict[str, str]:
    return {path: text for path, text in BLOCK.findall(DOC.read_text())}


def package_files() -> set[str]:
    return {
        str(p.relative_to(EXAMPLE))
        for p in EXAMPLE.rglob("*")
        if p.is_file()
        and p.suffix in (".py", ".toml")
        and not any(
            part in ("build", "__pycache__") or part.endswith(".egg-info") for part in p.parts
        )
    }


def test_every_file_of_the_example_is_shown_as_it_is():
    shown = shown_files()
    assert set(shown) == package_files()
    for path, text in shown.items():
        assert (EXAMPLE / path).read_text() == text, f"docs/plugins.md shows another {path}"


def test_the_doc_names_what_an_integrator_had_to_read_code_for():
    text = DOC.read_text()
    for needle in (
        "entry-point name and a dot",  # the settings prefix
        "many threads at once",  # threads
        "the longer of `nproxy.keypool.cooldown_seconds`",  # retry_after and the cooldown
        "What if something else escapes?",  # exceptions outside the error classes
        "Only `PaymentStatus.FINISHED`",  # which status activates
        "**`invoice_id` vs `payment_id`.**",
        "`nproxy.allow_demo = true`",  # the setting that allows demo processors
        "python -m pytest tests/",  # running the kit
        "CONTRACT_VERSION",
    ):
        assert needle in text, needle
