"""The layering of the code base (pyproject.toml, ``[tool.importlinter]``) holds: no feature
imports one above it, plugins import only the public plugin interface, and the core never
imports a plugin."""

from __future__ import annotations

from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_every_import_linter_contract_is_kept(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0
