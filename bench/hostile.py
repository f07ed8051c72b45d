"""The hostile suite's timings: how fast a sandbox answers again after each probe, and
what each probe does to a neighbouring sandbox's latency, under each runtime.

    .venv/bin/python bench/hostile.py [--idle-samples 50]

The probes are the hostile suite's (tests/sandbox/hostile_probes.py), run on real
sandboxes with the service's default settings, straight on the Docker backend. For each:

- ``probe_ms`` and ``status``: the probe's own execution.
- ``next_ms``: the next execution (``print(1)``) right after, and ``next_clean``:
  whether it answered exactly ``1`` with nothing else (no stray output).
- ``recovery_ms``: when the kernel was replaced, from the new kernel's start (the agent
  starts it as soon as the old one is gone) to the next execution's answer.
- ``neighbour``: ``1+1`` in another sandbox, back to back while the probe ran: p50 and
  p90, and ``ratio_p50`` against the same sandbox's idle p50 measured just before.

Prints one JSON object; never fails on a number (tests/sandbox/test_hostile.py checks
the behaviour; this only times it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import summary_ms
from sandboxes import RUNTIMES, backend_for, start

from interpreter.config import Settings
from interpreter.sandboxes.docker_backend import DockerSandboxBackend
from interpreter.sandboxes.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the probes live with the suite that checks them

from tests.sandbox.hostile_probes import PROBES, Probe  # noqa: E402


async def round_trip(sandbox: Sandbox) -> float:
    started = time.perf_counter()
    result = await sandbox.execute("1+1", timeout_s=60)
    if result.status != "ok":
        raise RuntimeError(f"the neighbour failed: {result.outputs}")
    return time.perf_counter() - started


async def probe_once(
    backend: DockerSandboxBackend, settings: Settings, neighbour: Sandbox, probe: Probe
) -> dict[str, Any]:
    sandbox = await start(backend, settings)
    try:
        await sandbox.execute("x = 'kept'", timeout_s=60)
        during: list[float] = []
        done = asyncio.Event()

        async def keep_asking() -> None:
            while not done.is_set():
                during.append(await round_trip(neighbour))

        asking = asyncio.create_task(keep_asking())
        started = time.perf_counter()
        result = await sandbox.execute(probe.code, timeout_s=probe.timeout_s)
        probe_s = time.perf_counter() - started
        done.set()
        await asking
        started = time.perf_counter()
        after = await sandbox.execute("print(1)", timeout_s=120)
        next_s = time.perf_counter() - started
        answered_at = time.time()
        replaced = result.kernel_restarted or after.kernel_restarted
        # The agent starts a new kernel as soon as the old one is gone: from then to
        # the next answer is what a user waits once the kernel has died.
        recovery_s = answered_at - (await sandbox.agent.health()).started_at if replaced else None
        return {
            "status": result.status,
            "probe_ms": round(probe_s * 1000, 1),
            "next_ms": round(next_s * 1000, 1),
            "next_clean": after.status == "ok" and after.stdout == "1\n" and not after.stderr,
            "kernel_replaced": replaced,
            "recovery_ms": None if recovery_s is None else round(recovery_s * 1000, 1),
            "neighbour": summary_ms(during, (50, 90), ""),
        }
    finally:
        await sandbox.close()
        await backend.destroy(sandbox.id)


async def run(idle_samples: int) -> dict[str, Any]:
    settings = Settings()
    root = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    results: dict[str, Any] = {}
    for runtime in RUNTIMES:
        backend = backend_for(settings, root, "hostile", runtime)
        neighbour = await start(backend, settings)
        try:
            per_probe: dict[str, Any] = {}
            for probe in PROBES:
                idle = [await round_trip(neighbour) for _ in range(idle_samples)]
                measured = await probe_once(backend, settings, neighbour, probe)
                idle_p50 = summary_ms(idle, (50,), "")["p50"]
                measured["neighbour"]["idle_p50"] = idle_p50
                measured["neighbour"]["ratio_p50"] = round(
                    measured["neighbour"]["p50"] / max(idle_p50, 1e-3), 2
                )
                per_probe[probe.name] = measured
                print(f"{runtime} {probe.name}: {json.dumps(measured)}", file=sys.stderr)
            results[runtime] = per_probe
        finally:
            await neighbour.close()
            await backend.destroy(neighbour.id)
            await backend.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle-samples", type=int, default=50)
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = asyncio.run(run(args.idle_samples))
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "image": Settings().sandbox_image,
        "median_neighbour_ratio": {
            runtime: statistics.median(
                probe["neighbour"]["ratio_p50"] for probe in results[runtime].values()
            )
            for runtime in RUNTIMES
        },
    }
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
