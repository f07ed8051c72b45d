"""How long a kernel restart takes, under each runtime, from the request to a kernel
that answers: what a user waits after pressing restart, or after code that ignored its
interrupts.

    .venv/bin/python bench/restarts.py [--restarts 8]

For each runtime, one sandbox (the service's default settings, straight on the Docker
backend) is restarted ``--restarts`` times, each after ``x = 1`` and as the service
restarts a kernel (an interrupt, then the restart); then once more per
restart with the ZMQ handshake time the service used before (ZMQ's default, 30 s) in
place of ``kernel.HANDSHAKE_IVL_MS``: under gVisor a connection made while the kernel
restarts can be accepted and never greeted, and the service's sockets then wait out
the whole handshake time. Both are measured in the same run, so compare them as a
ratio. Prints one JSON object; never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import summary_ms
from sandboxes import RUNTIMES, backend_for, start

from interpreter.config import Settings
from interpreter.sandboxes import kernel
from interpreter.sandboxes.docker_backend import DockerSandboxBackend

ZMQ_DEFAULT_HANDSHAKE_MS = 30_000


async def restarts(backend: DockerSandboxBackend, settings: Settings, count: int) -> list[float]:
    """Seconds for each of ``count`` restarts of one fresh sandbox (connected with the
    handshake time in force now)."""
    sandbox = await start(backend, settings)
    try:
        taken = []
        for _ in range(count):
            result = await sandbox.execute("x = 1", timeout_s=60)
            if result.status != "ok":
                raise RuntimeError(f"the sandbox failed: {result.outputs}")
            started = time.perf_counter()
            # As the service's restart does (SessionManager.restart): an interrupt first.
            await sandbox.interrupt()
            await sandbox.restart()
            taken.append(time.perf_counter() - started)
        return taken
    finally:
        await sandbox.close()
        await backend.destroy(sandbox.id)


def figures(samples: list[float]) -> dict[str, Any]:
    return {**summary_ms(samples, (50,)), "max_ms": round(max(samples) * 1000, 1)}


async def run(count: int) -> dict[str, Any]:
    settings = Settings()
    root = Path(tempfile.mkdtemp(prefix="bench-restarts-"))
    results: dict[str, Any] = {}
    for runtime in RUNTIMES:
        backend = backend_for(settings, root, "restarts", runtime)
        ours = kernel.HANDSHAKE_IVL_MS
        try:
            now = await restarts(backend, settings, count)
            kernel.HANDSHAKE_IVL_MS = ZMQ_DEFAULT_HANDSHAKE_MS
            before = await restarts(backend, settings, count)
        finally:
            kernel.HANDSHAKE_IVL_MS = ours
            await backend.close()
        results[runtime] = {
            f"handshake_{ours}ms": figures(now),
            f"handshake_{ZMQ_DEFAULT_HANDSHAKE_MS}ms": figures(before),
            "over_10s": {"now": sum(s > 10 for s in now), "before": sum(s > 10 for s in before)},
        }
    results["machine"] = {"cpus": os.cpu_count(), "load_after": os.getloadavg()[0]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--restarts", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.restarts)), indent=2))


if __name__ == "__main__":
    main()
