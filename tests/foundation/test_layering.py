"""The layering of the code base (pyproject.toml, ``[tool.importlinter]``) holds: no feature
imports one above it, plugins import only the public plugin interface, and the core never
imports a plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_every_import_linter_contract_is_kept():
    # In a process of its own: import-linter changes process-wide logging state, which would
    # silence the log records later tests look for.
    result = subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
