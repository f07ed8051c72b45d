"""Sandboxes and sessions on this machine: start times, round trips, memory, throughput.

    .venv/bin/python bench/sessions.py [--samples 10] [--seconds 10]   (or: make bench)

Measured on real Docker sandboxes and a real service process (``python -m interpreter
serve``), with clients as a user's would be. Prints one JSON object; never fails on a
number (the load of the machine is printed with it, since it moves every figure).

- ``image``: the sandbox image's tag and size.
- ``cold_start``: with and without pre-imports, sequentially: ``container_start_ms``
  (docker run until the container runs), ``kernel_ready_ms`` (then until the kernel
  answers on shell and iopub), ``create_to_ready_ms`` (both) and the first ``1+1``.
- ``sandbox_1plus1_ms``: ``1+1`` through ``Sandbox.execute`` on one warm sandbox.
- ``agent_request_ms``: the service's requests to a sandbox's agent (its health, its
  files), and the bare exchange on the agent's socket.
- ``warm_claim_to_first_result_ms``: client side, POST /v1/containers (a warm sandbox
  is claimed) then POST .../execute ``1+1``, the pool refilled before each sample.
- ``api_vs_raw_1plus1_ms``: ``1+1`` through POST .../execute over one keep-alive HTTP
  connection, interleaved with ``1+1`` from a jupyter_client BlockingKernelClient
  connected to the same kernel (its host connection file, RUN_ROOT/ID.kernel.json);
  both wait for the reply and the idle status. ``http_round_trip`` is GET /healthz on
  the same connection.
- ``idle_memory_mb``: docker stats (usage less inactive file pages, as ``docker stats``
  shows it) of idle sandboxes, with and without pre-imports, and how many such idle
  sessions 24 GiB holds.
- ``sustained_executions_per_s``: ten sessions each running ``1+1`` back to back over
  HTTP for ``--seconds``.
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

import docker
import httpx
from jupyter_client.blocking import BlockingKernelClient
from measure import machine_load, summary_ms
from service_process import service

from interpreter.config import Settings
from interpreter.sandboxes.docker_backend import DockerSandboxBackend, host_connection_file
from interpreter.sandboxes.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[1]
SERVICE_NAME = "bench-sessions"
GIB = 1 << 30


# -- straight on the backend -------------------------------------------------------------


def make_backend(root: Path, preimport: str) -> DockerSandboxBackend:
    settings = Settings()
    backend = DockerSandboxBackend.from_settings(
        settings,
        run_root=root / f"run-{len(preimport)}",
        service_name=SERVICE_NAME,
        preimport=preimport,
    )
    backend.check()
    return backend


async def cold_starts(root: Path, preimport: str, samples: int) -> dict[str, Any]:
    backend = make_backend(root, preimport)
    started, ready, total, first = [], [], [], []
    try:
        for _ in range(samples):
            t0 = time.perf_counter()
            record = await backend.create(Settings().sandbox_spec("bench"))
            t1 = time.perf_counter()
            sandbox = Sandbox(record, max_output_bytes=1_000_000, ready_timeout_s=120)
            try:
                await sandbox.connect()
                t2 = time.perf_counter()
                result = await sandbox.execute("1+1", timeout_s=30)
                t3 = time.perf_counter()
                assert result.status == "ok", result
            finally:
                await sandbox.close()
                await backend.destroy(record.id)
            started.append(t1 - t0)
            ready.append(t2 - t1)
            total.append(t2 - t0)
            first.append(t3 - t2)
    finally:
        await backend.close()
    return {
        "container_start_ms": summary_ms(started),
        "kernel_ready_ms": summary_ms(ready),
        "create_to_ready_ms": summary_ms(total),
        "first_1plus1_ms": summary_ms(first),
    }


async def sandbox_round_trip(root: Path, samples: int) -> dict[str, float]:
    backend = make_backend(root, "")
    record = await backend.create(Settings().sandbox_spec("bench"))
    sandbox = Sandbox(record, max_output_bytes=1_000_000, ready_timeout_s=120)
    try:
        await sandbox.connect()
        for _ in range(20):  # warm-up
            await sandbox.execute("1+1", timeout_s=30)
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            await sandbox.execute("1+1", timeout_s=30)
            times.append(time.perf_counter() - t0)
        return summary_ms(times)
    finally:
        await sandbox.close()
        await backend.destroy(record.id)
        await backend.close()


async def agent_requests(root: Path, samples: int) -> dict[str, dict[str, float]]:
    """The service's requests to a sandbox's agent, one at a time on an idle sandbox:
    ``health`` and ``list_files`` through ``AgentClient``, and ``bare_exchange``, the same
    health request written and read on a plain socket (what the client adds is the
    difference)."""
    backend = make_backend(root, "")
    record = await backend.create(Settings().sandbox_spec("bench"))
    sandbox = Sandbox(record, max_output_bytes=1_000_000, ready_timeout_s=120)
    try:
        await sandbox.connect()
        timed: dict[str, list[float]] = {"health": [], "list_files": [], "bare_exchange": []}
        calls = {"health": sandbox.agent.health, "list_files": sandbox.agent.list_files}
        for name, call in calls.items():
            for _ in range(samples):
                t0 = time.perf_counter()
                await call()
                timed[name].append(time.perf_counter() - t0)
        reader, writer = await asyncio.open_unix_connection(str(record.run_dir / "agent.sock"))
        try:
            for _ in range(samples):
                t0 = time.perf_counter()
                writer.write(b"GET /health HTTP/1.1\r\nHost: sandbox\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                timed["bare_exchange"].append(time.perf_counter() - t0)
        finally:
            writer.close()
        return {name: summary_ms(values) for name, values in timed.items()}
    finally:
        await sandbox.close()
        await backend.destroy(record.id)
        await backend.close()


async def idle_memory(root: Path, preimport: str, count: int) -> dict[str, Any]:
    backend = make_backend(root, preimport)
    sandboxes: list[Sandbox] = []
    client = docker.from_env()
    try:
        for _ in range(count):
            record = await backend.create(Settings().sandbox_spec("bench"))
            sandbox = Sandbox(record, max_output_bytes=1_000_000, ready_timeout_s=120)
            sandboxes.append(sandbox)
            await sandbox.connect()
            await sandbox.execute("1+1", timeout_s=30)
        await asyncio.sleep(3)  # let start-up garbage settle
        used = []
        for sandbox in sandboxes:
            (container,) = client.containers.list(
                filters={"label": f"code-interpreter.sandbox={sandbox.id}"}
            )
            stats = await asyncio.to_thread(container.stats, stream=False)
            memory = stats["memory_stats"]
            inactive = memory.get("stats", {}).get(
                "inactive_file", memory.get("stats", {}).get("total_inactive_file", 0)
            )
            used.append((memory["usage"] - inactive) / (1 << 20))
        per_session = statistics.median(used)
        return {
            "per_session_mb": round(per_session, 1),
            "samples_mb": [round(u, 1) for u in used],
            "idle_sessions_in_24gib": int(24 * GIB / (per_session * (1 << 20))),
        }
    finally:
        client.close()
        for sandbox in sandboxes:
            await sandbox.close()
            await backend.destroy(sandbox.id)
        await backend.close()


# -- through a real service process --------------------------------------------------------


def wait_pool_ready(http: httpx.Client, base: str, target: int) -> None:
    deadline = time.monotonic() + 300
    while http.get(f"{base}/healthz").json()["pool"]["ready"] < target:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm pool did not refill")
        time.sleep(0.05)


def warm_claims(base: str, samples: int) -> dict[str, float]:
    times = []
    with httpx.Client(timeout=120) as http:
        for _ in range(samples):
            wait_pool_ready(http, base, 1)
            t0 = time.perf_counter()
            created = http.post(f"{base}/v1/containers", json={"name": "bench"}).json()
            ran = http.post(
                f"{base}/v1/containers/{created['id']}/execute", json={"code": "1+1"}
            ).json()
            times.append(time.perf_counter() - t0)
            assert ran["outputs"][0]["data"]["text/plain"] == "2", ran
            http.delete(f"{base}/v1/containers/{created['id']}")
    return summary_ms(times)


def raw_1plus1(client: BlockingKernelClient) -> float:
    t0 = time.perf_counter()
    msg_id = client.execute("1+1")
    while client.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != msg_id:
        pass
    while True:
        msg = client.get_iopub_msg(timeout=30)
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            return time.perf_counter() - t0


def api_vs_raw(base: str, data_dir: Path, samples: int) -> dict[str, Any]:
    with httpx.Client(timeout=120) as http:
        container = http.post(f"{base}/v1/containers", json={"name": "raw"}).json()["id"]
        info = json.loads((data_dir / "sessions" / f"{container}.json").read_text())
        run_root = data_dir.parent / "run"
        raw = BlockingKernelClient(
            connection_file=str(host_connection_file(run_root, info["sandbox_id"]))
        )
        raw.load_connection_file()
        raw.start_channels()
        try:
            raw.wait_for_ready(timeout=60)
            execute = f"{base}/v1/containers/{container}/execute"
            api_times, raw_times, http_times = [], [], []
            for i in range(samples + 20):
                t0 = time.perf_counter()
                http.get(f"{base}/healthz")
                bare = time.perf_counter() - t0
                t0 = time.perf_counter()
                body = http.post(execute, json={"code": "1+1"}).json()
                api = time.perf_counter() - t0
                assert body["outputs"][0]["data"]["text/plain"] == "2", body
                direct = raw_1plus1(raw)
                if i >= 20:  # warm-up
                    api_times.append(api)
                    raw_times.append(direct)
                    http_times.append(bare)
        finally:
            raw.stop_channels()
        api_summary, raw_summary = summary_ms(api_times), summary_ms(raw_times)
        return {
            "api": api_summary,
            "raw_jupyter_client": raw_summary,
            "api_adds_at_p50_ms": round(api_summary["p50"] - raw_summary["p50"], 2),
            # The bare HTTP round trip (GET /healthz) on the same connection, for scale.
            "http_round_trip": summary_ms(http_times),
        }


async def sustained(base: str, sessions: int, seconds: float) -> dict[str, Any]:
    async with httpx.AsyncClient(
        timeout=300, limits=httpx.Limits(max_connections=2 * sessions)
    ) as http:
        created = await asyncio.gather(
            *(http.post(f"{base}/v1/containers", json={"name": f"s{i}"}) for i in range(sessions))
        )
        ids = [c.json()["id"] for c in created]
        counts = [0] * sessions
        stop_at = time.monotonic() + seconds

        async def loop(index: int) -> None:
            execute = f"{base}/v1/containers/{ids[index]}/execute"
            while time.monotonic() < stop_at:
                body = (await http.post(execute, json={"code": "1+1"})).json()
                assert body["status"] == "ok", body
                counts[index] += 1

        t0 = time.monotonic()
        await asyncio.gather(*(loop(i) for i in range(sessions)))
        elapsed = time.monotonic() - t0
    return {
        "sessions": sessions,
        "seconds": round(elapsed, 2),
        "executions": sum(counts),
        "executions_per_s": round(sum(counts) / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10, help="cold starts, warm claims")
    parser.add_argument("--round-trips", type=int, default=300, help="1+1 samples")
    parser.add_argument("--seconds", type=float, default=10.0, help="sustained run length")
    parser.add_argument("--memory-sandboxes", type=int, default=4)
    args = parser.parse_args()

    settings = Settings()
    client = docker.from_env()
    image = client.images.get(settings.sandbox_image)
    client.close()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_at_start": machine_load()},
        "image": {"tag": settings.sandbox_image, "size_mb": round(image.attrs["Size"] / 1e6)},
    }
    preimports = {"with_preimport": settings.preimport, "without_preimport": ""}
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
        root = Path(tmp)
        results["cold_start"] = {
            name: asyncio.run(cold_starts(root, value, args.samples))
            for name, value in preimports.items()
        }
        results["sandbox_1plus1_ms"] = asyncio.run(sandbox_round_trip(root, args.round_trips))
        results["agent_request_ms"] = asyncio.run(agent_requests(root, args.round_trips))
        with service(root / "service", SERVICE_NAME, POOL_SIZE="1") as (base, data_dir):
            results["warm_claim_to_first_result_ms"] = warm_claims(base, args.samples)
            results["api_vs_raw_1plus1_ms"] = api_vs_raw(base, data_dir, args.round_trips)
        with service(root / "sustained", SERVICE_NAME, POOL_SIZE="0", PREIMPORT="") as (base, _):
            results["sustained_executions_per_s"] = asyncio.run(sustained(base, 10, args.seconds))
        results["idle_memory_mb"] = {
            name: asyncio.run(idle_memory(root, value, args.memory_sandboxes))
            for name, value in preimports.items()
        }
    results["machine"]["load_at_end"] = machine_load()
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
