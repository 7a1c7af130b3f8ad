"""The mypy step of CI (.ci/mypy_baseline.py): errors are counted per file, and a file with
more errors than the baseline records fails it, while fixing errors never does."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "mypy_baseline.py"
_spec = importlib.util.spec_from_file_location("mypy_baseline", SCRIPT)
assert _spec is not None and _spec.loader is not None
baseline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baseline)

OUTPUT = """\
src/nproxy_core/billing/plan.py:28: error: Unsupported operand types for <  [operator]
src/nproxy_core/billing/plan.py:28: note: Left operand is of type "int"
src/nproxy_core/billing/plan.py:40:7: error: Incompatible return value type  [return-value]
src/nproxy_core/logs.py:12: error: Name "x" is not defined  [name-defined]
Found 3 errors in 2 files (checked 295 source files)
"""


def test_errors_are_counted_per_file_and_notes_are_not_errors():
    assert baseline.count_errors(OUTPUT) == Counter(
        {"src/nproxy_core/billing/plan.py": 2, "src/nproxy_core/logs.py": 1}
    )


def test_the_baseline_file_reads_back_what_was_written():
    counts = baseline.count_errors(OUTPUT)
    assert baseline.read_baseline(baseline.format_baseline(counts)) == counts


def test_one_more_error_in_a_file_or_any_in_a_new_file_fails_and_fewer_never_does():
    allowed = Counter({"src/a.py": 2, "src/b.py": 1})
    assert baseline.grown(Counter({"src/a.py": 3, "src/b.py": 1}), allowed) == {"src/a.py": (3, 2)}
    assert baseline.grown(Counter({"src/a.py": 1, "src/c.py": 1}), allowed) == {"src/c.py": (1, 0)}
    assert baseline.grown(Counter({"src/a.py": 1}), allowed) == {}
