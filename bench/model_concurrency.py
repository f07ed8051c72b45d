"""Many conversations on the model at once, through ``/v1/responses``.

    python bench/model_concurrency.py                      # the demo model, levels 1,4,8,16
    python bench/model_concurrency.py --model http://...   # any INTERPRETER_MODEL spec
    python bench/model_concurrency.py --model-process inline  # the model on a thread
                                                              # of the service's process

Starts ``python -m interpreter serve`` with the model, creates one container per
conversation up front (container starts are measured by ``bench/sessions.py``, not
here), and streams requests with the official ``openai`` SDK:

- ``levels``: for each concurrency c, c clients, each sending conversations one after
  another for ``seconds`` (each one request: a python call, its execution, an answer),
  so c are in flight all along. Aggregate generated tokens/s (``usage.output_tokens``
  over the wall time, until the last response ends), time to first token (the first
  streamed delta of any kind) and whole-response latency, p50/p99; ``cpu``: the
  service's, its model process's (``--model-process own``, the default) and the
  clients' CPU as shares of one core, and how busy the machine was;
  ``settled_before``: each level starts once the machine is quiet (``until_quiet``),
  since the containers' creation and first executions kept it busy for a while after.
- ``interactive_under_background``: the time to first token of interactive requests
  sent one at a time, first on an idle service, then while 8 background responses are
  kept running (each one that ends is replaced), p50/p99 and the ratio.

Prints JSON, with the load average before and after; never fails on a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from measure import CpuShares, summary_ms, until_quiet
from openai import AsyncOpenAI
from service_process import running_service

from model_runner.startup import freeze_startup_objects

SERVICE_NAME = "bench-model-concurrency"
POLL_S = 0.25

DELTAS = {
    "response.reasoning_text.delta",
    "response.code_interpreter_call_code.delta",
    "response.output_text.delta",
}


def latency_ms(samples: list[float]) -> dict[str, float]:
    """p50 and p99 as every bench has them, and the mean."""
    return {**summary_ms(samples), "mean_ms": round(statistics.fmean(samples) * 1000, 2)}


class Workload:
    """Prompts of the demo model's arithmetic family, with fresh numbers each time."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def prompt(self) -> str:
        a, b = self.rng.randint(10, 99_999), self.rng.randint(10, 99_999)
        return f"What is {a} * {b}?"


async def one_response(
    client: AsyncOpenAI, model: str, container: str, prompt: str, **fields: Any
) -> dict[str, float]:
    """Stream one response; its time to first token, latency and output tokens."""
    started = time.perf_counter()
    first: float | None = None
    output_tokens = 0
    stream = await client.responses.create(
        model=model,
        input=prompt,
        tools=[{"type": "code_interpreter", "container": container}],
        stream=True,
        **fields,
    )
    async for event in stream:
        if first is None and event.type in DELTAS:
            first = time.perf_counter() - started
        if event.type in ("response.completed", "response.incomplete", "response.failed"):
            usage = event.response.usage
            output_tokens = usage.output_tokens if usage else 0
    latency = time.perf_counter() - started
    return {"ttft": first if first is not None else latency, "latency": latency,
            "tokens": output_tokens}  # fmt: skip


async def level(
    client: AsyncOpenAI,
    model: str,
    containers: list[str],
    workload: Workload,
    c: int,
    seconds: float,
    pids: dict[str, int],
) -> dict[str, Any]:
    results: list[dict[str, float]] = []
    cpu = CpuShares(**pids)
    started = time.perf_counter()

    async def client_loop(box: str) -> None:
        while time.perf_counter() - started < seconds:
            results.append(await one_response(client, model, box, workload.prompt()))

    await asyncio.gather(*(client_loop(containers[i]) for i in range(c)))
    wall = time.perf_counter() - started
    tokens = sum(r["tokens"] for r in results)
    return {
        "concurrency": c,
        "responses": len(results),
        "output_tokens": tokens,
        "aggregate_tokens_per_s": round(tokens / wall, 1),
        "ttft": latency_ms([r["ttft"] for r in results]),
        "latency": latency_ms([r["latency"] for r in results]),
        # this_process: the clients, parsing every streamed event with the SDK.
        "cpu": cpu.shares(),
    }


async def interactive_under_background(
    client: AsyncOpenAI,
    http: httpx.AsyncClient,
    model: str,
    containers: list[str],
    workload: Workload,
    samples: int,
    background: int,
) -> dict[str, Any]:
    interactive_box, background_boxes = containers[0], containers[1 : 1 + background]
    idle = []
    for _ in range(samples):
        idle.append((await one_response(client, model, interactive_box, workload.prompt()))["ttft"])

    running = True
    in_flight = 0
    completed_background = 0
    all_started = asyncio.Event()

    async def keep_busy(box: str) -> None:
        nonlocal in_flight, completed_background
        while running:
            created = await client.responses.create(
                model=model,
                input=workload.prompt(),
                tools=[{"type": "code_interpreter", "container": box}],
                background=True,
            )
            in_flight += 1
            if in_flight >= background:
                all_started.set()
            while True:
                body = (await http.get(f"/responses/{created.id}")).json()
                if body["status"] not in ("queued", "in_progress"):
                    break
                # As a background client polls: now and then. Polling 8 jobs every few
                # milliseconds would measure the polls' load on the service, not the model's.
                await asyncio.sleep(POLL_S)
            in_flight -= 1
            completed_background += 1

    workers = [asyncio.create_task(keep_busy(box)) for box in background_boxes]
    await all_started.wait()
    loaded = []
    for _ in range(samples):
        loaded.append(
            (await one_response(client, model, interactive_box, workload.prompt()))["ttft"]
        )
    running = False
    await asyncio.gather(*workers)
    idle_summary, loaded_summary = latency_ms(idle), latency_ms(loaded)
    return {
        "background_responses": background,
        "background_completed_meanwhile": completed_background,
        "idle_ttft": idle_summary,
        "loaded_ttft": loaded_summary,
        "p99_ratio": round(loaded_summary["p99_ms"] / idle_summary["p99_ms"], 2),
        "p50_ratio": round(loaded_summary["p50_ms"] / idle_summary["p50_ms"], 2),
    }


async def run(args: argparse.Namespace, base: str, service_pid: int) -> dict[str, Any]:
    levels = [int(x) for x in args.levels.split(",")]
    needed = max(max(levels), 1 + args.background)
    client = AsyncOpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=600)
    async with httpx.AsyncClient(base_url=f"{base}/v1", timeout=600) as http:
        containers = [
            (await http.post("/containers", json={"name": f"bench-{i}"})).json()["id"]
            for i in range(needed)
        ]
        model = (await http.get("/models")).json()["data"][0]["id"]
        workload = Workload(args.seed)
        # Warm the model and every container's first execution.
        await asyncio.gather(
            *(one_response(client, model, box, workload.prompt()) for box in containers)
        )
        pids = {"service": service_pid}
        # A local model in a process of its own: the service's /healthz names it.
        health = (await http.get(f"{base}/healthz")).json()
        model_pid = health["model"].get("process", {}).get("pid")
        if model_pid is not None:
            pids["model_process"] = model_pid
        result: dict[str, Any] = {
            "model": model,
            "model_process": "own" if model_pid is not None else "inline or served",
            "load_before": os.getloadavg(),
        }
        result["levels"] = []
        for c in levels:
            settled = await until_quiet()
            figures = await level(client, model, containers, workload, c, args.seconds, pids)
            result["levels"].append({**figures, "settled_before": settled})
        single = result["levels"][0]["aggregate_tokens_per_s"]
        for entry in result["levels"]:
            entry["speedup_over_first_level"] = round(entry["aggregate_tokens_per_s"] / single, 2)
        if args.interactive > 0:
            result["interactive_under_background"] = await interactive_under_background(
                client, http, model, containers, workload, args.interactive, args.background
            )
        result["load_after"] = os.getloadavg()
    await client.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo", help="an INTERPRETER_MODEL spec")
    parser.add_argument("--levels", default="1,4,8,16")
    parser.add_argument(
        "--seconds", type=float, default=20, help="how long each level keeps its clients busy"
    )
    parser.add_argument(
        "--interactive", type=int, default=20, help="TTFT samples, each way (0: not measured)"
    )
    parser.add_argument("--background", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--model-process",
        choices=["own", "inline"],
        default="own",
        help="where a local model runs (INTERPRETER_MODEL_PROCESS)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        settings = {
            "MODEL": args.model,
            "POOL_SIZE": "0",
            "BACKGROUND_WORKERS": str(args.background),
            "PREIMPORT": "",
            "MODEL_PROCESS": args.model_process,
        }
        with running_service(Path(tmp), SERVICE_NAME, **settings) as running:
            # A full collection of this client's own objects would stall the streams it
            # times by tens of milliseconds.
            freeze_startup_objects()
            result = asyncio.run(run(args, running.base, running.pid))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
