"""runc against gVisor's runsc, measured in one run on this machine.

    .venv/bin/python bench/runtimes.py [--samples 5] [--round-trips 200]

Real sandboxes with the service's default settings (pre-imports, 1 GiB), straight on the
Docker backend, the two runtimes taking turns sample by sample so that the machine's
load falls on both alike. Prints one JSON object; never fails on a number.

- ``cold_start_ms``: create a sandbox and wait until its kernel answers (with the
  default pre-imports), sequentially.
- ``one_plus_one_ms``: ``1+1`` through ``Sandbox.execute`` on a warm kernel.
- ``groupby_ms``: a pandas groupby-mean over 1 M rows (1,000 keys), timed inside the
  kernel; ``groupby_execution_ms`` is the whole execution as the host sees it.
- ``fork_ms``: ``os.fork`` and wait for the child, inside the kernel (gVisor's ptrace
  platform pays for every new address space).
- ``idle_memory_mb``: the container's memory (docker stats, less inactive file pages)
  with an idle kernel.
- ``ratio``: runsc over runc, p50 against p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
from measure import summary_ms

from interpreter.config import Settings
from interpreter.sandboxes.docker_backend import DockerSandboxBackend
from interpreter.sandboxes.sandbox import Sandbox

RUNTIMES = ("runc", "runsc")
SERVICE_NAME = "bench-runtimes"

GROUPBY_SETUP = (
    "import numpy as np, pandas as pd\n"
    "rng = np.random.default_rng(0)\n"
    "frame = pd.DataFrame({'k': rng.integers(0, 1000, 1_000_000), 'v': rng.random(1_000_000)})"
)
GROUPBY = (
    "import time\n"
    "started = time.perf_counter()\n"
    "means = frame.groupby('k')['v'].mean()\n"
    "print(time.perf_counter() - started)"
)
FORK = (
    "import os, time\n"
    "started = time.perf_counter()\n"
    "for _ in range(10):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        os._exit(0)\n"
    "    os.waitpid(pid, 0)\n"
    "print((time.perf_counter() - started) / 10)"
)


async def start(backend: DockerSandboxBackend, settings: Settings) -> tuple[Sandbox, float]:
    started = time.perf_counter()
    record = await backend.create(settings.sandbox_spec("bench"))
    sandbox = Sandbox(record, max_output_bytes=1_000_000, ready_timeout_s=120)
    await sandbox.connect()
    return sandbox, time.perf_counter() - started


async def stop(backend: DockerSandboxBackend, sandbox: Sandbox) -> None:
    await sandbox.close()
    await backend.destroy(sandbox.id)


async def timed_in_kernel(sandbox: Sandbox, code: str) -> tuple[float, float]:
    """(what the code printed, the execution as the host saw it), in seconds."""
    started = time.perf_counter()
    result = await sandbox.execute(code, timeout_s=300)
    elapsed = time.perf_counter() - started
    if result.status != "ok":
        raise RuntimeError(f"benchmark code failed: {result.outputs}")
    return float(result.stdout), elapsed


def idle_memory_mb(client: docker.DockerClient, sandbox: Sandbox) -> float:
    (container,) = client.containers.list(
        filters={"label": f"code-interpreter.sandbox={sandbox.id}"}
    )
    memory = container.stats(stream=False)["memory_stats"]
    stats = memory.get("stats", {})
    inactive = stats.get("inactive_file", stats.get("total_inactive_file", 0))
    return float((memory["usage"] - inactive) / (1 << 20))


async def run(samples: int, round_trips: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-runtimes-"))
    settings = Settings()
    backends = {
        runtime: DockerSandboxBackend.from_settings(
            settings,
            run_root=root / runtime,
            service_name=f"{SERVICE_NAME}-{runtime}",
            runtime=runtime,
        )
        for runtime in RUNTIMES
    }
    for backend in backends.values():
        backend.check()
    cold: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
    for _ in range(samples):
        for runtime, backend in backends.items():
            sandbox, elapsed = await start(backend, settings)
            cold[runtime].append(elapsed)
            await stop(backend, sandbox)

    warm = {runtime: (await start(backend, settings))[0] for runtime, backend in backends.items()}
    client = docker.from_env()
    try:
        await asyncio.sleep(3)  # start-up garbage settles before the memory is read
        memory = {runtime: idle_memory_mb(client, sandbox) for runtime, sandbox in warm.items()}
        trips: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
        for _ in range(round_trips):
            for runtime, sandbox in warm.items():
                started = time.perf_counter()
                await sandbox.execute("1+1", timeout_s=30)
                trips[runtime].append(time.perf_counter() - started)
        groupby: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
        groupby_execution: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
        forks: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
        for sandbox in warm.values():
            await sandbox.execute(GROUPBY_SETUP, timeout_s=300)
        for _ in range(samples):
            for runtime, sandbox in warm.items():
                inside, seen = await timed_in_kernel(sandbox, GROUPBY)
                groupby[runtime].append(inside)
                groupby_execution[runtime].append(seen)
                forks[runtime].append((await timed_in_kernel(sandbox, FORK))[0])
    finally:
        client.close()
        for runtime, sandbox in warm.items():
            await stop(backends[runtime], sandbox)
        for backend in backends.values():
            await backend.close()

    results: dict[str, Any] = {
        runtime: {
            "cold_start_ms": summary_ms(cold[runtime], (50, 90), ""),
            "one_plus_one_ms": summary_ms(trips[runtime], (50, 90), ""),
            "groupby_ms": summary_ms(groupby[runtime], (50, 90), ""),
            "groupby_execution_ms": summary_ms(groupby_execution[runtime], (50, 90), ""),
            "fork_ms": summary_ms(forks[runtime], (50, 90), ""),
            "idle_memory_mb": round(memory[runtime], 1),
        }
        for runtime in RUNTIMES
    }
    results["ratio"] = {
        figure: round(results["runsc"][figure]["p50"] / results["runc"][figure]["p50"], 2)
        for figure in ("cold_start_ms", "one_plus_one_ms", "groupby_ms", "fork_ms")
    }
    results["ratio"]["idle_memory_mb"] = round(
        results["runsc"]["idle_memory_mb"] / results["runc"]["idle_memory_mb"], 2
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--round-trips", type=int, default=200)
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = asyncio.run(run(args.samples, args.round_trips))
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "image": Settings().sandbox_image,
    }
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
