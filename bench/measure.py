"""What every benchmark reports the same way: latency percentiles, the machine's load and
where the CPU went.

One definition, so that a p99 in one table of ``docs/benchmarks.md`` means what it means
in the next: p50 is the median (the mean of the middle two for an even count), any
other percentile is the nearest rank (the smallest sample with at least that fraction
of the samples at or below it).
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any


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


class CpuShares:
    """CPU time over a window, as shares of one core: of given processes (by pid; their
    threads included, children not), of the calling process, and of the whole machine
    (``machine_busy``: the fraction of all cores not idle). Linux only (``/proc``)."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids
        self._start = self._read()

    @staticmethod
    def _process_seconds(pid: int) -> float:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    @staticmethod
    def _machine_jiffies() -> tuple[int, int]:
        with open("/proc/stat") as file:
            values = [int(v) for v in file.readline().split()[1:]]
        idle = values[3] + values[4]  # idle, iowait
        return sum(values) - idle, sum(values)

    def _read(self) -> dict[str, Any]:
        return {
            "wall": time.monotonic(),
            "own": time.process_time(),
            "machine": self._machine_jiffies(),
            **{name: self._process_seconds(pid) for name, pid in self.pids.items()},
        }

    def shares(self) -> dict[str, float]:
        """Since construction (or the last call)."""
        end, start = self._read(), self._start
        self._start = end
        wall = end["wall"] - start["wall"]
        busy = end["machine"][0] - start["machine"][0]
        total = end["machine"][1] - start["machine"][1]
        figures = {
            f"{name}_core_share": round((end[name] - start[name]) / wall, 2) for name in self.pids
        }
        figures["this_process_core_share"] = round((end["own"] - start["own"]) / wall, 2)
        figures["machine_busy"] = round(busy / total, 2) if total else 0.0
        return figures


async def until_quiet(
    busy_below: float = 0.15, window_s: float = 2.0, timeout_s: float = 60.0
) -> dict[str, float]:
    """Wait for a window of ``window_s`` in which less than ``busy_below`` of the
    machine's cores were busy, for at most ``timeout_s``: what came just before a
    measurement (containers made, their first executions) can keep the machine busy for
    a while, and would be counted against whatever is measured first. Returns how long
    it waited and how busy the last window was."""
    started = time.monotonic()
    while True:
        window = CpuShares()
        await asyncio.sleep(window_s)
        busy = window.shares()["machine_busy"]
        waited = time.monotonic() - started
        if busy < busy_below or waited >= timeout_s:
            return {"waited_s": round(waited, 1), "machine_busy": busy}
