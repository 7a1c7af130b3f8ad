"""Runs the installed ``nproxy`` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# The installed console script, next to the interpreter running the tests.
NPROXY = [str(Path(sys.executable).parent / "nproxy")]


def write_ini(folder: Path, settings: dict[str, Any], name: str = "test.ini") -> Path:
    ini = folder / name
    lines = ["[app:main]", "use = egg:nproxy"] + [f"{k} = {v}" for k, v in settings.items()]
    ini.write_text("\n".join(lines) + "\n")
    return ini


def nproxy(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NPROXY, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
