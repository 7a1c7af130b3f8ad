"""How long the ``nproxy`` command takes to answer without doing any work: median wall time of
``nproxy --help``, ``nproxy --version`` and ``nproxy keys --help`` over several runs, each a fresh
process as an operator starts it (DESIGN 4.11: ``--help`` in at most 0.4 s).

    .venv/bin/python benchmarks/cli_start.py [--runs 15] [--src OTHER_CHECKOUT/src]

``--src`` runs the command from another checkout's sources (e.g. a ``git worktree`` of an older
commit) with this interpreter, to compare before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = (("--help",), ("--version",), ("keys", "--help"))
# The console script's own lines: what ``nproxy`` runs.
ENTRY = "import sys; from nproxy_core.cli import main; sys.exit(main())"


def wall_times(args: tuple[str, ...], runs: int, env: dict[str, str]) -> tuple[list[float], int]:
    """Wall times of ``runs`` fresh processes, and the exit status of the last."""
    times, status = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", ENTRY, *args], env=env, capture_output=True, check=False
        )
        times.append(time.perf_counter() - started)
        status = done.returncode
    return times, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--src", help="import nproxy_core from this folder instead")
    options = parser.parse_args()
    env = dict(os.environ)
    if options.src:
        env["PYTHONPATH"] = os.path.abspath(options.src)
    wall_times(("--help",), 2, env)  # warm the file cache and the bytecode
    for args in COMMANDS:
        times, status = wall_times(args, options.runs, env)
        # An older checkout may not know a command (``--version``): its refusal is timed too.
        note = f"  exit {status}" if status else ""
        print(
            f"nproxy {' '.join(args):<14} median {statistics.median(times):.3f} s  "
            f"min {min(times):.3f} s  max {max(times):.3f} s  ({options.runs} runs){note}"
        )


if __name__ == "__main__":
    main()
