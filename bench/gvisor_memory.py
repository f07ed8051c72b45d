"""A fork bomb under gVisor: how much host memory and how many host tasks the sandbox
peaks at, and whether it loses the sandbox, under two arms.

    .venv/bin/python bench/gvisor_memory.py [--arms guard|tasks] [--runs 8] \
        [--memory-limit 1g] [--data-size 1g]

Each run starts a fresh runsc sandbox (the service's default settings, or the sizes
given: the hostile suite runs with 384m and 256m), runs the
hostile suite's fork bomb in it, then ``print(1)``. Runs alternate between the two
arms, so that both meet the same machine. ``--arms guard`` (the default):

- ``guarded``: as the service runs it (the agent's MemoryGuard, SANDBOX_MEMORY_LIMIT);
- ``unguarded``: the same sandbox without that variable, as before the guard.

``--arms tasks``:

- ``tasks-32``: as the service runs it (GVISOR_MAX_PROCESSES sandboxed tasks);
- ``tasks-64``: 64 sandboxed tasks under the same host pids limit, as before.

Per arm: the host cgroup's peak memory per run (cgroup v1 ``memory.max_usage_in_bytes``,
or v2 ``memory.peak``) against the host's limit, the peak of its host tasks (sampled
``pids.current``) against the host's pids limit, the bomb's duration, how many runs
lost the sandbox (the host ended it, ``OOMKilled``, or runsc itself exited), and how
many the guard acted in (its lines in the container's log).

Prints one JSON object; never fails on a number (tests/sandbox/test_sandbox_limits.py
checks the behaviour; this only counts it).
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

from interpreter.config import Settings
from interpreter.errors import SandboxError
from interpreter.sandboxes.base import SandboxSpec
from interpreter.sandboxes.docker_backend import DockerSandboxBackend
from interpreter.sandboxes.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the probes live with the suite that checks them

from tests.sandbox.hostile_probes import FORK_BOMB  # noqa: E402

GUARD_VARIABLE = "SANDBOX_MEMORY_LIMIT"
GUARD_LINE = "agent: the sandbox used"


class UnguardedBackend(DockerSandboxBackend):
    """The Docker backend as it was before the guard: the agent is not told a limit."""

    def _limits(self, spec: SandboxSpec) -> dict[str, Any]:
        limits = super()._limits(spec)
        limits["environment"].pop(GUARD_VARIABLE, None)
        return limits


class Tasks64Backend(DockerSandboxBackend):
    """64 sandboxed tasks under the host pids limit the service gives 32 (4352)."""

    gvisor_max_processes = 64
    gvisor_host_tasks_per_process = 64


ARMS: dict[str, dict[str, type[DockerSandboxBackend]]] = {
    "guard": {"guarded": DockerSandboxBackend, "unguarded": UnguardedBackend},
    "tasks": {
        f"tasks-{DockerSandboxBackend.gvisor_max_processes}": DockerSandboxBackend,
        "tasks-64": Tasks64Backend,
    },
}


def cgroup_file(container_id: str, v1: str, v2: str, controller: str = "memory") -> Path | None:
    for path in (
        Path(f"/sys/fs/cgroup/{controller}/docker/{container_id}/{v1}"),
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/{v2}"),
    ):
        if path.exists():
            return path
    return None


async def one_run(backend: DockerSandboxBackend, settings: Settings) -> dict[str, Any]:
    """One fork bomb in a fresh sandbox of ``settings``' sizes."""
    record = await backend.create(settings.sandbox_spec("bench"))
    sandbox = Sandbox(record, max_output_bytes=settings.max_output_bytes, ready_timeout_s=60)
    (container,) = docker.from_env().containers.list(
        all=True, filters={"label": f"code-interpreter.sandbox={record.id}"}
    )
    peak_file = cgroup_file(container.id, "memory.max_usage_in_bytes", "memory.peak")
    limit_file = cgroup_file(container.id, "memory.limit_in_bytes", "memory.max")
    tasks_file = cgroup_file(container.id, "pids.current", "pids.current", "pids")
    tasks_limit_file = cgroup_file(container.id, "pids.max", "pids.max", "pids")
    limit = int(limit_file.read_text()) if limit_file else None
    tasks_limit = int(tasks_limit_file.read_text()) if tasks_limit_file else None
    peak: int | None = None
    peak_tasks: int | None = None

    async def watch_peak() -> None:
        # Read as it goes: a sandbox the host ends takes its cgroup with it.
        nonlocal peak, peak_tasks
        while peak_file is not None or tasks_file is not None:
            try:
                if peak_file is not None:
                    peak = int(peak_file.read_text())
                if tasks_file is not None:
                    peak_tasks = max(peak_tasks or 0, int(tasks_file.read_text()))
            except (OSError, ValueError):
                return
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_peak())
    try:
        await sandbox.connect()
        started = time.perf_counter()
        try:
            result = await sandbox.execute(FORK_BOMB.code, timeout_s=120)
            outcome = result.status
            after = await sandbox.execute("print(1)", timeout_s=60)
            next_clean = after.stdout == "1\n"
        except SandboxError as exc:
            outcome, next_clean = f"sandbox lost: {exc}"[:120], False
        bomb_s = time.perf_counter() - started
        await asyncio.sleep(0.2)  # the watcher's last read
        watcher.cancel()
        container.reload()
        state = container.attrs["State"]
        return {
            "outcome": outcome,
            "next_clean": next_clean,
            "bomb_s": round(bomb_s, 1),
            "peak_mib": None if peak is None else peak >> 20,
            "host_limit_mib": None if limit is None else limit >> 20,
            "peak_host_tasks": peak_tasks,
            "host_tasks_limit": tasks_limit,
            "lost": not state["Running"],
            "exit_code": None if state["Running"] else state["ExitCode"],
            "oom_killed": bool(state["OOMKilled"]),
            "guard_lines": container.logs().decode(errors="replace").count(GUARD_LINE),
        }
    finally:
        watcher.cancel()
        await sandbox.close()
        await backend.destroy(record.id)


async def run(runs: int, settings: Settings, arms: str) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-gvisor-memory-"))
    backends = {
        arm: kind.from_settings(
            settings,
            run_root=root / arm,
            service_name=f"bench-gvisor-memory-{arm}",
            runtime="runsc",
        )
        for arm, kind in ARMS[arms].items()
    }
    per_arm: dict[str, list[dict[str, Any]]] = {arm: [] for arm in backends}
    try:
        for index in range(runs):
            for arm, backend in backends.items():
                measured = await one_run(backend, settings)
                per_arm[arm].append(measured)
                print(f"{arm} {index + 1}: {json.dumps(measured)}", file=sys.stderr)
    finally:
        for backend in backends.values():
            await backend.close()
    summary: dict[str, Any] = {}
    for arm, measured in per_arm.items():
        peaks = [run["peak_mib"] for run in measured if run["peak_mib"] is not None]
        tasks = sorted(run["peak_host_tasks"] for run in measured if run["peak_host_tasks"])
        durations = sorted(run["bomb_s"] for run in measured)
        summary[arm] = {
            "runs": len(measured),
            "ended_whole_by_the_host": sum(run["oom_killed"] for run in measured),
            "sandbox_lost": sum(run["lost"] for run in measured),
            "guard_acted": sum(run["guard_lines"] > 0 for run in measured),
            "next_execution_clean": sum(run["next_clean"] for run in measured),
            "peak_mib_max": max(peaks, default=None),
            "peak_mib_median": sorted(peaks)[len(peaks) // 2] if peaks else None,
            "host_limit_mib": measured[0]["host_limit_mib"] if measured else None,
            "peak_host_tasks_max": tasks[-1] if tasks else None,
            "peak_host_tasks_median": tasks[len(tasks) // 2] if tasks else None,
            "host_tasks_limit": measured[0]["host_tasks_limit"] if measured else None,
            "bomb_s_median": durations[len(durations) // 2] if durations else None,
            "each": measured,
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", choices=sorted(ARMS), default="guard")
    parser.add_argument("--runs", type=int, default=8, help="fork bombs per arm")
    parser.add_argument("--memory-limit", default=Settings().memory_limit)
    parser.add_argument("--data-size", default=Settings().data_size)
    args = parser.parse_args()
    settings = Settings(memory_limit=args.memory_limit, data_size=args.data_size)
    load_before = os.getloadavg()
    results = asyncio.run(run(args.runs, settings, args.arms))
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "image": settings.sandbox_image,
        "memory_limit": settings.memory_limit,
        "data_size": settings.data_size,
    }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
