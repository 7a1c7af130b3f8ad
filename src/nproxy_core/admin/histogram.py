"""Latency histograms that can be added together: an hour's summary keeps one per key, and a
day's percentiles come from the sum of 24 of them.

Buckets grow by 5 % (bucket ``b`` holds ``[1.05**(b-1), 1.05**b)`` ms; bucket 0 holds under
1 ms), so a percentile read from a histogram is within 2.5 % of the exact one. Where every value
is known (the live hours), the exact percentile is taken instead (:func:`exact_percentile`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

RATIO = 1.05
#: ln(RATIO): the database buckets raw latencies with the same number (admin/stats.py).
LOG = math.log(RATIO)


def bucket(latency_ms: float) -> int:
    if latency_ms < 1:
        return 0
    return math.floor(math.log(latency_ms) / LOG) + 1


def edges(index: int) -> tuple[float, float]:
    if index <= 0:
        return 0.0, 1.0
    return RATIO ** (index - 1), RATIO**index


def histogram(latencies: Iterable[float]) -> Counter[int]:
    return Counter(bucket(value) for value in latencies)


def from_json(data: Mapping[str, int] | None) -> Counter[int]:
    """A stored histogram (JSON keys are strings) as bucket -> count."""
    return Counter({int(k): int(v) for k, v in (data or {}).items()})


def to_json(counts: Mapping[int, int]) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(counts.items()) if v}


def estimate_percentile(counts: Mapping[int, int], fraction: float) -> float | None:
    """The ``fraction`` percentile of a histogram, interpolated inside its bucket the way
    ``percentile_cont`` interpolates between values."""
    total = sum(counts.values())
    if not total:
        return None
    rank = fraction * (total - 1)
    seen = 0
    for index in sorted(counts):
        count = counts[index]
        if count and rank < seen + count:
            low, high = edges(index)
            return low + (high - low) * (rank - seen + 0.5) / count
        seen += count
    return edges(max(counts))[1]  # pragma: no cover - the rank is always inside


def exact_percentile(values: list[int], fraction: float) -> float | None:
    """Linear-interpolated percentile of sorted ``values``, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    position = (len(values) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return values[low] + (values[high] - values[low]) * (position - low)
