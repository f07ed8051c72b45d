"""The first responses of a freshly started service, against its later ones.

    python bench/first_response.py                  # 3 starts, 4 responses each
    python bench/first_response.py --starts 5 --responses 6

Each start is a new ``python -m interpreter serve`` with the demo model in a process of
its own, one container made and given a first execution (container starts are
``bench/sessions.py``'s), then ``--responses`` streamed responses one after the other
with the official ``openai`` SDK: the time to the first streamed delta and the whole
response, per position. ``first_over_later``: the first response's median against the
median of the later ones, in the same starts.

The client builds the SDK's stream event types before it measures (the SDK defers them
to first use), so that a first response's figure is the service's, not the client's.

Prints JSON; never fails on a figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import openai.types.responses as sdk_responses
from openai import OpenAI
from service_process import running_service

from model_runner.startup import build_deferred_models

SERVICE_NAME = "bench-first-response"


def one_start(responses: int) -> list[dict[str, float]]:
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-first-") as tmp:
        settings = {"MODEL": "demo", "POOL_SIZE": "0", "PREIMPORT": ""}
        with running_service(Path(tmp), SERVICE_NAME, **settings) as running:
            client = OpenAI(base_url=f"{running.base}/v1", api_key="unused", max_retries=0)
            box = httpx.post(f"{running.base}/v1/containers", json={"name": "first"}, timeout=60)
            container = box.json()["id"]
            httpx.post(
                f"{running.base}/v1/containers/{container}/execute",
                json={"code": "1"},
                timeout=60,
            )
            for i in range(responses):
                started = time.perf_counter()
                first = None
                stream = client.responses.create(
                    model="demo",
                    input=f"What is {1234 + i} * 5678?",
                    tools=[{"type": "code_interpreter", "container": container}],
                    stream=True,
                )
                for event in stream:
                    if first is None and event.type.endswith(".delta"):
                        first = time.perf_counter() - started
                latency = time.perf_counter() - started
                figures.append(
                    {"first_delta_ms": round((first or latency) * 1000, 1),
                     "latency_ms": round(latency * 1000, 1)}
                )  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--responses", type=int, default=4)
    args = parser.parse_args()
    build_deferred_models(sdk_responses)
    runs = [one_start(args.responses) for _ in range(args.starts)]

    def median(position: slice, key: str) -> float:
        return round(statistics.median(f[key] for run in runs for f in run[position]), 1)

    result: dict[str, Any] = {"starts": runs}
    for key in ("first_delta_ms", "latency_ms"):
        first, later = median(slice(0, 1), key), median(slice(1, None), key)
        result[key] = {"first": first, "later": later, "first_over_later": round(first / later, 2)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
