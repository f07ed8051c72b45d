"""The service under load, bounded and local: bursts, many conversations, many
executions, and a soak of mixed traffic.

    .venv/bin/python bench/load.py [--conversations 50] [--sessions 20] [--executions 10]
                                   [--burst 16] [--soak-seconds 600] [--soak-workers 8]
                                   [--skip burst,conversations,executions,soak]
                                   [--preimport MODULES]   # '' for none

One real service process (``python -m interpreter serve``, the demo model, every other
setting at its default), driven over HTTP with the official ``openai`` SDK from this
process. Prints one JSON object; never fails on a figure. Errors are counted, with their
first messages: anything but the expected answer is one.

- ``burst``: one conversation alone (a new container, one arithmetic turn; the median of
  three), then ``--burst`` new conversations sent at once, first from a pool at rest (its
  minimum, after a quiet minute), then again once the pool has grown with that demand;
  the ratio of each burst's wall time to one conversation's.
- ``conversations``: ``--conversations`` two-turn conversations at once ("Set x to N.",
  then "What is x squared?" with ``previous_response_id``). Right when the second turn's
  execution printed the square of what the first printed (the state was kept, in the
  conversation's own kernel), and every response reads back by id. The model's own
  accuracy (its answer quoting the square) is counted apart.
- ``executions``: ``--sessions`` containers, ``--executions`` executions sent at once to
  each; each appends to a list and prints its length. Right when every session ran its
  executions one at a time (lengths 1..n, execution counts consecutive) and its list is
  in the order the results say.
- ``soak``: ``--soak-workers`` clients of mixed traffic for ``--soak-seconds``: turns of
  conversations (streamed and not), background responses polled to the end, executions,
  file uploads and downloads, containers created and deleted. The service's resident
  memory and open descriptors at the start and the end; afterwards, containers and run
  folders left behind (the service stops with ``--cleanup-on-exit``: none may remain).
  A follow-up turn whose code finds no ``x`` is an error (the kernel lost it); one that
  names another variable is the model's slip, counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import docker
import httpx
from measure import machine_load, summary_ms
from openai import AsyncOpenAI
from service_process import RunningService, running_service

SERVICE_NAME = "bench-load"
TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]
OUTPUTS: list[Any] = ["code_interpreter_call.outputs"]
SETTLE_S = 60.0


class Tally:
    """Latencies by kind of request, and errors with their first messages."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.messages: list[str] = []
        self.model_misses = 0

    def error(self, kind: str, message: str) -> None:
        self.errors[kind] += 1
        if len(self.messages) < 10:
            self.messages.append(f"{kind}: {message[:300]}")

    async def timed(self, kind: str, call: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        try:
            result = await call()
        except Exception as exc:
            self.error(kind, f"{type(exc).__name__}: {exc}")
            return None
        self.latencies[kind].append(time.perf_counter() - started)
        return result

    def report(self) -> dict[str, Any]:
        return {
            "latency": {
                kind: summary_ms(values) for kind, values in sorted(self.latencies.items())
            },
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "first_errors": self.messages,
        }


def logs_of(response: Any) -> list[str]:
    return [
        "".join(o.logs for o in (item.outputs or []) if o.type == "logs")
        for item in response.output
        if item.type == "code_interpreter_call"
    ]


def container_of(response: Any) -> str | None:
    return next(
        (i.container_id for i in response.output if i.type == "code_interpreter_call"), None
    )


# -- bursts -------------------------------------------------------------------------------


async def arithmetic_turn(client: AsyncOpenAI, tally: Tally, seed: int) -> bool:
    """One new conversation of one turn; whether it was answered, with the right output."""
    rng = random.Random(seed)
    a, b = rng.randint(100, 999), rng.randint(10, 99)
    response = await tally.timed(
        "arithmetic_turn",
        lambda: client.responses.create(
            model="demo", input=f"What is {a} * {b}?", tools=TOOLS, include=OUTPUTS
        ),
    )
    if response is None:
        return False
    if response.status != "completed":
        tally.error("arithmetic_turn", f"{response.status}: {response.error}")
        return False
    if logs_of(response)[:1] != [f"{a * b}\n"]:
        tally.model_misses += 1
    return True


async def wait_pool(http: httpx.AsyncClient, base: str, at_rest: bool) -> dict[str, Any]:
    """The pool at its minimum and quiet (``at_rest``), or full at its current target."""
    deadline = time.monotonic() + 600
    while True:
        pool = (await http.get(f"{base}/healthz")).json()["pool"]
        full = pool["ready"] == pool["target"] and not pool["starting"]
        if full and (not at_rest or pool["target"] == pool["minimum"]):
            return dict(pool)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the pool did not settle: {pool}")
        await asyncio.sleep(0.5)


async def burst(base: str, size: int) -> dict[str, Any]:
    tally = Tally()
    async with (
        httpx.AsyncClient(timeout=60) as http,
        AsyncOpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=600) as client,
    ):
        alone = []
        for i in range(3):
            await wait_pool(http, base, at_rest=False)
            started = time.perf_counter()
            await arithmetic_turn(client, tally, seed=i)
            alone.append(time.perf_counter() - started)
        one = statistics.median(alone)
        results: dict[str, Any] = {"one_conversation_alone_ms": round(one * 1000, 1)}
        for name, at_rest in (("from_pool_at_rest", True), ("after_demand", False)):
            pool = await wait_pool(http, base, at_rest=at_rest)
            started = time.perf_counter()
            answered = await asyncio.gather(
                *(
                    arithmetic_turn(client, tally, seed=1000 * (2 + at_rest) + i)
                    for i in range(size)
                )
            )
            took = time.perf_counter() - started
            results[name] = {
                "pool_before": {k: pool[k] for k in ("ready", "target", "minimum", "maximum")},
                "conversations": size,
                "answered": sum(answered),
                "wall_ms": round(took * 1000, 1),
                "ratio_to_one_alone": round(took / one, 2),
            }
    results.update(tally.report())
    results["model_misses"] = tally.model_misses
    return results


# -- conversations --------------------------------------------------------------------------


async def two_turns(client: AsyncOpenAI, tally: Tally, n: int) -> bool:
    first = await tally.timed(
        "turn_1",
        lambda: client.responses.create(
            model="demo", input=f"Set x to {n}.", tools=TOOLS, include=OUTPUTS
        ),
    )
    if first is None:
        return False
    second = await tally.timed(
        "turn_2",
        lambda: client.responses.create(
            model="demo",
            input="What is x squared?",
            previous_response_id=first.id,
            tools=TOOLS,
            include=OUTPUTS,
        ),
    )
    if second is None:
        return False
    for response in (first, second):
        if response.status != "completed":
            tally.error("conversation", f"{response.id} {response.status}: {response.error}")
            return False
    printed, squared = logs_of(first), logs_of(second)
    try:
        value = int(printed[0])
    except (IndexError, ValueError):
        tally.error("conversation", f"the first turn printed {printed!r}")
        return False
    if squared[:1] != [f"{value**2}\n"] or container_of(first) != container_of(second):
        tally.error("conversation", f"x={value}, then {squared!r}: state not kept")
        return False
    if value != n or str(n * n) not in second.output_text:
        tally.model_misses += 1
    for response in (first, second):
        stored = await tally.timed("retrieve", lambda r=response: client.responses.retrieve(r.id))
        if stored is None or stored.status != "completed":
            tally.error("conversation", f"{response.id} did not read back")
            return False
    return True


async def conversations(base: str, count: int) -> dict[str, Any]:
    tally = Tally()
    async with AsyncOpenAI(
        base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=900
    ) as client:
        started = time.perf_counter()
        right = await asyncio.gather(*(two_turns(client, tally, 11 + i) for i in range(count)))
        took = time.perf_counter() - started
    return {
        "conversations": count,
        "right": sum(right),
        "wall_s": round(took, 1),
        "model_misses": tally.model_misses,
        **tally.report(),
    }


# -- executions -----------------------------------------------------------------------------


async def executions(base: str, sessions: int, per_session: int) -> dict[str, Any]:
    tally = Tally()
    async with httpx.AsyncClient(
        timeout=600, limits=httpx.Limits(max_connections=sessions * per_session + 10)
    ) as http:
        created = await asyncio.gather(
            *(http.post(f"{base}/v1/containers", json={"name": f"e{i}"}) for i in range(sessions))
        )
        ids = [c.json()["id"] for c in created]
        for container in ids:
            await http.post(f"{base}/v1/containers/{container}/execute", json={"code": "seq = []"})

        async def run(container: str, k: int) -> dict[str, Any] | None:
            response = await tally.timed(
                "execute",
                lambda: http.post(
                    f"{base}/v1/containers/{container}/execute",
                    json={"code": f"seq.append({k})\nprint(len(seq))"},
                ),
            )
            if response is None:
                return None
            body: dict[str, Any] = response.json()
            if response.status_code != 200 or body.get("status") != "ok":
                tally.error("execute", f"{response.status_code} {body}")
                return None
            return {
                "k": k,
                "length": int(body["outputs"][0]["text"]),
                "count": body["execution_count"],
            }

        started = time.perf_counter()
        results = await asyncio.gather(
            *(run(container, k) for container in ids for k in range(per_session))
        )
        took = time.perf_counter() - started
        right = 0
        for index, container in enumerate(ids):
            mine = results[index * per_session : (index + 1) * per_session]
            if None in mine:
                continue
            done = sorted((r for r in mine if r is not None), key=lambda r: r["length"])
            final = (
                await http.post(
                    f"{base}/v1/containers/{container}/execute", json={"code": "print(seq)"}
                )
            ).json()
            in_order = (
                [r["length"] for r in done] == list(range(1, per_session + 1))
                and [r["count"] for r in done]
                == list(range(done[0]["count"], done[0]["count"] + per_session))
                and final["outputs"][0]["text"] == f"{[r['k'] for r in done]}\n"
            )
            if in_order:
                right += 1
            else:
                tally.error("order", f"{container}: {done} then {final}")
        for container in ids:
            await http.delete(f"{base}/v1/containers/{container}")
    return {
        "sessions": sessions,
        "executions_each": per_session,
        "sessions_right": right,
        "wall_s": round(took, 2),
        **tally.report(),
    }


# -- soak -----------------------------------------------------------------------------------


def process_figures(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return {"rss_mb": rss_kb // 1024, "open_fds": len(os.listdir(f"/proc/{pid}/fd"))}


class SoakWorker:
    """One client: its own conversation and container, and a mix of requests. Every
    container it makes, it deletes once done with it, so that the service's state at the
    end of the soak is what it was at the start."""

    def __init__(
        self, index: int, base: str, tally: Tally, client: AsyncOpenAI, http: httpx.AsyncClient
    ) -> None:
        self.rng = random.Random(index)
        self.base = base
        self.tally = tally
        self.client = client
        self.http = http
        self.conversation: Any = None  # its last response
        self.turns = 0
        self.container: str | None = None
        self.executions = 0

    async def run(self, until: float) -> int:
        done = 0
        actions = [
            (30, self.conversation_turn),
            (10, self.streamed_turn),
            (5, self.background_turn),
            (35, self.execute),
            (15, self.files),
            (5, self.churn),
        ]
        weights = [w for w, _ in actions]
        while time.monotonic() < until:
            (action,) = self.rng.choices([a for _, a in actions], weights)
            await action()
            done += 1
        await self.delete(container_of(self.conversation) if self.conversation else None)
        await self.delete(self.container)
        return done

    async def delete(self, container: str | None) -> None:
        if container is None:
            return
        deleted = await self.tally.timed(
            "container_delete", lambda: self.http.delete(f"{self.base}/v1/containers/{container}")
        )
        if deleted is not None and deleted.status_code != 200:
            self.tally.error("container_delete", deleted.text)

    async def conversation_turn(self) -> None:
        if self.conversation is None or self.turns >= 8:  # a new one now and then
            await self.delete(container_of(self.conversation) if self.conversation else None)
            self.conversation = None
            n = self.rng.randint(10, 99)
            first = await self.tally.timed(
                "response_new_conversation",
                lambda: self.client.responses.create(
                    model="demo", input=f"Set x to {n}.", tools=TOOLS, include=OUTPUTS
                ),
            )
            if first is not None and self._completed(first):
                self.conversation, self.turns = first, 1
            return
        previous = self.conversation
        follow = await self.tally.timed(
            "response_follow_up",
            lambda: self.client.responses.create(
                model="demo",
                input="What is x squared?" if self.turns % 2 else f"Set x to {self.turns}.",
                previous_response_id=previous.id,
                tools=TOOLS,
                include=OUTPUTS,
            ),
        )
        if follow is None or not self._completed(follow):
            return
        if container_of(follow) not in (None, container_of(previous)):
            self.tally.error("response_follow_up", f"{follow.id} ran in another container")
        outputs = logs_of(follow)
        if any("name 'x' is not defined" in logs for logs in outputs):
            code = [i.code for i in follow.output if i.type == "code_interpreter_call"]
            self.tally.error(
                "response_follow_up",
                f"{follow.id}: the kernel lost x (after {previous.id}); code {code!r}",
            )
        elif any("NameError" in logs for logs in outputs):
            # The demo model naming another variable (it once wrote print(n * 2)): its
            # slip, not the kernel's.
            self.tally.model_misses += 1
        self.conversation, self.turns = follow, self.turns + 1

    async def streamed_turn(self) -> None:
        a, b = self.rng.randint(100, 999), self.rng.randint(10, 99)

        async def stream() -> Any:
            final = None
            async with await self.client.responses.create(
                model="demo", input=f"What is {a} * {b}?", tools=TOOLS, stream=True
            ) as events:
                async for event in events:
                    if event.type in ("response.completed", "response.failed"):
                        final = event.response
            return final

        response = await self.tally.timed("response_streamed", stream)
        if response is not None:
            self._completed(response)
            await self.delete(container_of(response))

    async def background_turn(self) -> None:
        async def run() -> Any:
            queued = await self.client.responses.create(
                model="demo", input="What is 12 * 34?", tools=TOOLS, background=True
            )
            while True:
                response = await self.client.responses.retrieve(queued.id)
                if response.status not in ("queued", "in_progress"):
                    return response
                await asyncio.sleep(0.2)

        response = await self.tally.timed("response_background", run)
        if response is not None:
            self._completed(response)
            await self.delete(container_of(response))

    async def _own_container(self) -> str | None:
        if self.container is None:
            created = await self.tally.timed(
                "container_create",
                lambda: self.http.post(f"{self.base}/v1/containers", json={"name": "soak"}),
            )
            if created is None or created.status_code != 200:
                self.tally.error("container_create", created.text if created else "no answer")
                return None
            self.container, self.executions = created.json()["id"], 0
        return self.container

    async def execute(self) -> None:
        container = await self._own_container()
        if container is None:
            return
        self.executions += 1
        expected = self.executions
        response = await self.tally.timed(
            "execute",
            lambda: self.http.post(
                f"{self.base}/v1/containers/{container}/execute",
                json={"code": "n = globals().get('n', 0) + 1\nprint(n)"},
            ),
        )
        if response is None:
            return
        body = response.json()
        if response.status_code != 200 or body["outputs"] != [
            {"type": "stream", "name": "stdout", "text": f"{expected}\n"}
        ]:
            self.tally.error("execute", f"{response.status_code} {body} (expected {expected})")

    async def files(self) -> None:
        container = await self._own_container()
        if container is None:
            return
        content = os.urandom(self.rng.randint(1, 256 * 1024))
        files = f"{self.base}/v1/containers/{container}/files"
        uploaded = await self.tally.timed(
            "file_upload", lambda: self.http.post(files, files={"file": ("data.bin", content)})
        )
        if uploaded is None or uploaded.status_code != 200:
            self.tally.error("file_upload", uploaded.text if uploaded else "no answer")
            return
        file_id = uploaded.json()["id"]
        listed = await self.tally.timed("file_list", lambda: self.http.get(files))
        if listed is None or file_id not in {f["id"] for f in listed.json()["data"]}:
            self.tally.error("file_list", "the upload is not listed")
        downloaded = await self.tally.timed(
            "file_download", lambda: self.http.get(f"{files}/{file_id}/content")
        )
        if downloaded is None or downloaded.content != content:
            self.tally.error("file_download", "the content differs")
        await self.http.delete(f"{files}/{file_id}")

    async def churn(self) -> None:
        container, self.container = self.container, None
        await self.delete(container)
        await self._own_container()

    def _completed(self, response: Any) -> bool:
        if response.status != "completed":
            self.tally.error("response", f"{response.id} {response.status}: {response.error}")
            return False
        return True


async def at_rest(service: RunningService) -> dict[str, Any]:
    """Every container deleted and the pool back at its minimum; then the service's
    memory, descriptors, sessions and containers."""
    async with httpx.AsyncClient(timeout=600) as http:
        listed = (await http.get(f"{service.base}/v1/containers", params={"limit": 100})).json()
        while listed["data"]:
            for container in listed["data"]:
                await http.delete(f"{service.base}/v1/containers/{container['id']}")
            listed = (await http.get(f"{service.base}/v1/containers", params={"limit": 100})).json()
        pool = await wait_pool(http, service.base, at_rest=True)
        health = (await http.get(f"{service.base}/healthz")).json()
        # Removals (deleted sessions, the pool shrinking) finish in the background: what
        # the engine still holds beyond the pool and the sessions a minute later is left
        # behind.
        started = time.monotonic()
        expected = pool["ready"] + health["sessions"]
        while True:
            held = len(await asyncio.to_thread(containers))
            if held <= expected or time.monotonic() > started + SETTLE_S:
                break
            await asyncio.sleep(0.5)
    return {
        **process_figures(service.pid),
        "live_sessions": health["sessions"],
        "pool_ready": pool["ready"],
        "containers": held,
        "containers_settled_after_s": round(time.monotonic() - started, 1),
        # A sandbox is its run folder and its connection file beside it.
        "run_folder_entries": len(list(service.run_root.iterdir())),
    }


async def soak(service: RunningService, seconds: float, workers: int) -> dict[str, Any]:
    tally = Tally()
    before = await at_rest(service)
    async with (
        httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=4 * workers)) as http,
        AsyncOpenAI(
            base_url=f"{service.base}/v1", api_key="none", max_retries=0, timeout=900
        ) as client,
    ):
        until = time.monotonic() + seconds
        team = [SoakWorker(i, service.base, tally, client, http) for i in range(workers)]
        started = time.perf_counter()
        counts = await asyncio.gather(*(worker.run(until) for worker in team))
        took = time.perf_counter() - started
        busiest = process_figures(service.pid)
    after = await at_rest(service)
    return {
        "seconds": round(took, 1),
        "workers": workers,
        "requests": sum(counts),
        "requests_per_s": round(sum(counts) / took, 2),
        # Both at rest: no session, the pool at its minimum.
        "at_rest_before": before,
        "at_rest_after": after,
        "at_the_end_of_the_traffic": busiest,
        "rss_growth_percent": round(
            100 * (after["rss_mb"] - before["rss_mb"]) / before["rss_mb"], 1
        ),
        "open_fds_growth": after["open_fds"] - before["open_fds"],
        "containers_left_beyond_the_pool": after["containers"] - after["pool_ready"],
        "model_misses": tally.model_misses,
        **tally.report(),
    }


def containers() -> list[str]:
    client = docker.from_env()
    try:
        return [
            c.id
            for c in client.containers.list(
                all=True, filters={"label": f"code-interpreter.service={SERVICE_NAME}"}, sparse=True
            )
        ]
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--executions", type=int, default=10)
    parser.add_argument("--burst", type=int, default=16)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--soak-workers", type=int, default=8)
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out")
    parser.add_argument(
        "--preimport",
        help="the sandboxes' pre-imports ('' for none); the service's default if not given",
    )
    args = parser.parse_args()
    skip = set(args.skip.split(",")) - {""}
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_at_start": machine_load()}}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        root = Path(tmp)
        settings = {"MODEL": "demo"}
        if args.preimport is not None:
            settings["PREIMPORT"] = args.preimport
        results["preimport"] = args.preimport
        with running_service(root, SERVICE_NAME, **settings) as service:
            results["service_at_start"] = process_figures(service.pid)
            if "burst" not in skip:
                results["burst"] = asyncio.run(burst(service.base, args.burst))
            if "conversations" not in skip:
                results["conversations"] = asyncio.run(
                    conversations(service.base, args.conversations)
                )
            if "executions" not in skip:
                results["executions"] = asyncio.run(
                    executions(service.base, args.sessions, args.executions)
                )
            if "soak" not in skip:
                results["soak"] = asyncio.run(soak(service, args.soak_seconds, args.soak_workers))
        # Stopped (with --cleanup-on-exit): nothing of it may remain.
        run_root = root / "run"
        results["left_behind"] = {
            "containers": len(containers()),
            "run_folder_entries": len(list(run_root.iterdir())) if run_root.exists() else 0,
        }
    results["machine"]["load_at_end"] = machine_load()
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
