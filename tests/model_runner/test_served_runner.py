"""Served mode: ``HTTPGenerator`` against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from runner_fixtures import collect, greedy, greedy_reference, prompt_of, wait_idle

from model_runner.errors import InvalidGenerationRequest, ModelUnavailable
from model_runner.generator import GenerationRequest
from model_runner.http_client import HTTPGenerator
from model_runner.server import create_app
from model_runner.transformers_backend import TransformersGenerator

REPO = Path(__file__).resolve().parents[2]


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def server_url(subset_generator: TransformersGenerator) -> Iterator[str]:
    """The subset model served by uvicorn in a thread with its own event loop, as a
    separate runner process would be (and so sync clients can call it too)."""
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(subset_generator), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
async def remote(server_url: str) -> AsyncIterator[HTTPGenerator]:
    generator = HTTPGenerator(server_url)
    yield generator
    await generator.aclose()


async def test_connect_learns_the_model_name(server_url: str) -> None:
    generator = HTTPGenerator.connect(server_url)
    try:
        assert generator.name == "subset-tiny"
        assert await generator.health() == {"status": "ok", "model": "subset-tiny"}
    finally:
        await generator.aclose()


async def test_round_trip_matches_the_local_model(
    remote: HTTPGenerator, subset_generator: TransformersGenerator
) -> None:
    prompt = prompt_of(20, offset=11)
    stream = remote.generate(greedy(prompt, 6, cache_key="served"))
    tokens = await collect(stream)
    assert tokens == greedy_reference(subset_generator, prompt, 6)
    assert stream.usage.prompt_tokens == 20
    assert stream.usage.completion_tokens == 6

    follow = [*prompt, *tokens, *prompt_of(5, offset=12)]
    again = remote.generate(greedy(follow, 4, cache_key="served"))
    assert await collect(again) == greedy_reference(subset_generator, follow, 4)
    assert again.usage.cached_tokens == len(prompt) + len(tokens) - 1


async def test_stop_tokens_cross_the_wire(remote: HTTPGenerator) -> None:
    prompt = prompt_of(10, offset=13)
    free = await collect(remote.generate(greedy(prompt, 6)))
    stopped = await collect(remote.generate(greedy(prompt, 6, stop_tokens=frozenset({free[0]}))))
    assert stopped == free[:1]


async def test_closing_the_client_stream_cancels_the_server_generation(
    remote: HTTPGenerator, subset_generator: TransformersGenerator
) -> None:
    before = subset_generator.stats.completion_tokens
    cancelled_before = subset_generator.stats.cancelled
    stream = remote.generate(greedy(prompt_of(8), 100_000))
    iterator = aiter(stream)
    await anext(iterator)
    await anext(iterator)
    await stream.aclose()
    await wait_idle(subset_generator)
    assert subset_generator.stats.cancelled == cancelled_before + 1
    assert subset_generator.stats.completion_tokens - before < 100


async def test_a_request_the_server_rejects_raises_the_typed_error(remote: HTTPGenerator) -> None:
    empty = GenerationRequest(prompt_tokens=[], max_tokens=3, stop_tokens=frozenset())
    with pytest.raises(InvalidGenerationRequest, match="prompt_tokens"):
        await collect(remote.generate(empty))


async def test_a_model_side_error_raises_the_typed_error(remote: HTTPGenerator) -> None:
    with pytest.raises(InvalidGenerationRequest, match="prompt ids"):
        await collect(remote.generate(greedy([300_000], 3)))


async def test_errors_have_the_openai_shape(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url) as client:
        response = await client.post("/v1/generate", json={"prompt_tokens": [1]})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "max_tokens" in error["message"]
        missing = await client.get("/v1/nothing")
        assert missing.status_code == 404
        assert "error" in missing.json()


async def test_an_unreachable_runner_raises_model_unavailable() -> None:
    sock = free_socket()  # bound but never listening: connections are refused
    try:
        generator = HTTPGenerator(f"http://127.0.0.1:{sock.getsockname()[1]}")
        with pytest.raises(ModelUnavailable):
            await collect(generator.generate(greedy([1], 1)))
        await generator.aclose()
    finally:
        sock.close()


async def test_the_serve_command_serves_random_tiny(tmp_path: Path) -> None:
    """``python -m model_runner serve`` end to end, in its own process."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    log_path = tmp_path / "runner.log"
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "model_runner", "serve", "--model", "random:tiny"],
            *["--device", "cpu", "--port", str(port), "--log-level", "warning"],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        )
    generator = HTTPGenerator(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.returncode is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            try:
                await generator.health()
                break
            except ModelUnavailable:
                await asyncio.sleep(0.2)
        stream = generator.generate(greedy([200006, 1428, 200008, 12], 3))
        assert len(await collect(stream)) == 3
        assert generator.name == "random:tiny"
    finally:
        await generator.aclose()
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), timeout=20)
        except TimeoutError:
            process.kill()
            await process.wait()
