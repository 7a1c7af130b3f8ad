"""Runs the ``nproxy`` command as an operator would: in this process through click's runner
(the same group the console script runs, with the same arguments, input and environment;
starting a Python process costs a second and a half of CPU each time), or, for the smoke tests
of the console script itself, in a real subprocess (``real=True``)."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
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
    *args: str,
    stdin: str = "",
    env: dict[str, str] | None = None,
    timeout: float = 60,
    real: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``nproxy ARGS``: its exit status, stdout and stderr, as a finished process gives them.
    In process, an exception the command let through is written to stderr as the console
    script would print it (a traceback), so a test that forbids tracebacks still sees one."""
    if real:
        return subprocess.run(
            [*NPROXY, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
    from click.testing import CliRunner

    from nproxy_core.cli import main

    result = CliRunner().invoke(main, list(args), input=stdin, env=env, prog_name="nproxy")
    stderr = result.stderr
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return subprocess.CompletedProcess([*NPROXY, *args], result.exit_code, result.stdout, stderr)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command prints on stderr (no traceback, a non-zero exit)."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]
