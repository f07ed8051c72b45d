"""What every benchmark reports the same way: latency percentiles and the machine's load.

One definition, so that a p99 in one table of ``docs/benchmarks.md`` means what it means
in the next: p50 is the median (the mean of the middle two for an even count), any
other percentile is the nearest rank (the smallest sample with at least that fraction
of the samples at or below it).
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence


def nearest_rank(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    # The small slack keeps 0.99 * 100 from rounding up to a rank of 100.
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def percentile(samples: Sequence[float], percent: int) -> float:
    if percent == 50:
        return statistics.median(samples)
    return nearest_rank(samples, percent / 100)


def summary_ms(
    samples_s: Sequence[float], percents: Sequence[int] = (50, 99), suffix: str = "_ms"
) -> dict[str, float]:
    """``{"p50_ms": ..., "p99_ms": ..., "n": ...}`` from samples in seconds."""
    if not samples_s:
        return {"n": 0}
    figures: dict[str, float] = {
        f"p{percent}{suffix}": round(percentile(samples_s, percent) * 1000, 2)
        for percent in percents
    }
    figures["n"] = len(samples_s)
    return figures


def machine_load() -> list[float]:
    """The 1-, 5- and 15-minute load averages: every figure moves with them."""
    return [round(x, 2) for x in os.getloadavg()]
