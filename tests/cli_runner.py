"""Runs the installed ``nproxy`` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# The installed console script, next to the interpreter running the tests.
NPROXY = [str(Path(sys.executable).parent / "nproxy")]


def write_ini(
    folder: Path, settings: dict[str, Any], name: str = "test.ini", *, extra: str = ""
) -> Path:
    """An ini file with ``settings`` under ``[app:main]``, then ``extra`` sections verbatim."""
    ini = folder / name
    lines = ["[app:main]", "use = egg:nproxy"]
    # configparser interpolates %: escape it in every value.
    lines += [f"{k} = {str(v).replace('%', '%%')}" for k, v in settings.items()]
    ini.write_text("\n".join(lines) + "\n" + extra)
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


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command prints on stderr (no traceback, a non-zero exit)."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]
