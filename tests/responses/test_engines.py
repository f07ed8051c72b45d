"""The service on served engines, through the official openai SDK: the whole loop over
vLLM's and SGLang's wire formats (answered by this project's runner, serving the demo
model: those engines need GPUs), and an engine that dies mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from interpreter.api.app import create_app
from model_runner.loading import load_generator
from model_runner.server import create_app as create_runner
from tests.conftest import REPO, RunningServer, free_port, start_server

pytestmark = [pytest.mark.docker]

TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]


@pytest.fixture(scope="module")
def demo_runner() -> Iterator[str]:
    """The demo model behind the runner's HTTP app (native, vLLM and SGLang formats)."""
    running = start_server(create_runner(load_generator("demo")))
    yield running.base_url
    running.stop()


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_a_conversation_over_an_engines_wire_format(
    engine: str,
    demo_runner: str,
    make_settings: Callable[..., Any],
    serve: Callable[..., RunningServer],
) -> None:
    spec = f"{engine}+{demo_runner}"
    app = create_app(
        make_settings(model=spec), generator=load_generator(spec), cleanup_on_exit=True
    )
    server = serve(app)
    with OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=300) as client:
        # Greedy: these engines sample at 1.0 unless told, and the test checks an answer.
        first = client.responses.create(
            model="demo",
            input="Set x to 42.",
            tools=TOOLS,
            include=["code_interpreter_call.outputs"],
            temperature=0,
        )
        assert first.status == "completed", first.error
        second = client.responses.create(
            model="demo",
            input="What is x squared?",
            tools=TOOLS,
            previous_response_id=first.id,
            temperature=0,
        )
        assert second.status == "completed", second.error
        assert "1764" in second.output_text
        (model,) = httpx.get(f"{server.v1}/models").json()["data"]
        assert (model["id"], model["name"]) == (spec, "gpt-oss-demo")
        # The follow-up turn found its conversation in the runner's cache.
        assert second.usage is not None
        assert second.usage.input_tokens_details.cached_tokens > 0


def test_an_engine_that_dies_mid_stream_fails_the_response_with_a_reason(
    make_settings: Callable[..., Any], serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "runner.log"
    with log.open("w") as sink:
        runner = subprocess.Popen(
            [sys.executable, "-m", "model_runner", "serve", "--model", "demo",
             "--device", "cpu", "--port", str(port), "--log-level", "warning"],
            cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert runner.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        spec = f"vllm+{url}"
        app = create_app(
            make_settings(model=spec), generator=load_generator(spec), cleanup_on_exit=True
        )
        server = serve(app)
        with OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=300) as client:
            # Killed at its first token: mid-call, or at the latest before the next call.
            stream = client.responses.create(
                model="demo", input="What is 1234 * 5678?", tools=TOOLS, stream=True
            )
            final = None
            for event in stream:
                if event.type.endswith(".delta") and runner.poll() is None:
                    runner.send_signal(signal.SIGKILL)
                if event.type in ("response.completed", "response.failed", "response.incomplete"):
                    final = event.response
        assert final is not None and final.status == "failed"
        assert final.error is not None
        assert "went away" in final.error.message or "cut the stream short" in final.error.message
        stored = httpx.get(f"{server.v1}/responses/{final.id}").json()
        assert stored["status"] == "failed"
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.wait()
