"""mypy may only get better: run it, count its errors per file, and fail when any file has
more errors than .ci/mypy-baseline.txt records for it (a file not listed may have none).

    python .ci/mypy_baseline.py            # the CI step: compare with the baseline
    python .ci/mypy_baseline.py --update   # record today's counts (after fixing errors)

Counts per file, not lines, so that editing a file above an old error does not fail the
check, while a new error anywhere does, even in a file whose old errors were fixed meanwhile.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / ".ci" / "mypy-baseline.txt"
ERROR = re.compile(r"^(?P<path>[^:\s][^:]*\.pyi?):\d+(?::\d+)?: error: ", re.MULTILINE)
HEADER = (
    "# mypy's errors per file today: a file may have at most this many (.ci/mypy_baseline.py).\n"
    "# Refresh after fixing errors: python .ci/mypy_baseline.py --update\n"
)


def count_errors(output: str) -> Counter[str]:
    """Errors per file in mypy's output (notes are not errors)."""
    return Counter(match["path"] for match in ERROR.finditer(output))


def read_baseline(text: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            number, path = line.split(maxsplit=1)
            counts[path] = int(number)
    return counts


def format_baseline(counts: Counter[str]) -> str:
    lines = (f"{counts[path]} {path}\n" for path in sorted(counts) if counts[path])
    return HEADER + "".join(lines)


def grown(now: Counter[str], baseline: Counter[str]) -> dict[str, tuple[int, int]]:
    """Files with more errors than the baseline allows: {path: (now, allowed)}."""
    return {path: (n, baseline[path]) for path, n in sorted(now.items()) if n > baseline[path]}


def run_mypy() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    # 0: no error, 1: errors found; anything else is mypy failing to run at all.
    if result.returncode not in (0, 1):
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"mypy could not run (exit {result.returncode})")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="record today's counts")
    args = parser.parse_args(argv)

    output = run_mypy()
    now = count_errors(output)
    if args.update:
        BASELINE.write_text(format_baseline(now))
        print(f"mypy baseline: {sum(now.values())} errors in {len(now)} files recorded")
        return 0
    baseline = read_baseline(BASELINE.read_text())
    worse = grown(now, baseline)
    print(
        f"mypy: {sum(now.values())} errors in {len(now)} files "
        f"(baseline {sum(baseline.values())} in {len(baseline)})"
    )
    if worse:
        print(output, end="")
        for path, (n, allowed) in worse.items():
            print(f"mypy: {path} has {n} errors, the baseline allows {allowed}")
        return 1
    fewer = sum(baseline.values()) - sum(now.values())
    if fewer > 0:
        print(
            f"mypy: {fewer} fewer than the baseline; record that: "
            "python .ci/mypy_baseline.py --update"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
