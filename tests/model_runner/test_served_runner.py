"""Served mode: the runner's HTTP app against each client that speaks one of its wire
formats: its own (``RunnerGenerator``), vLLM's (``VLLMGenerator``) and SGLang's
(``SGLangGenerator``) token-in, token-out subsets. Real uvicorn on 127.0.0.1, the real
batching backend behind it."""

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
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from runner_fixtures import collect, greedy, greedy_reference, prompt_of, wait_idle

from model_runner.engines.remote import RemoteGenerator
from model_runner.engines.runner import RunnerGenerator
from model_runner.engines.sglang import SGLangGenerator
from model_runner.engines.vllm import VLLMGenerator
from model_runner.errors import InvalidGenerationRequest, ModelMismatch, ModelUnavailable
from model_runner.generator import GenerationRequest
from model_runner.server import create_app
from model_runner.transformers_backend import TransformersGenerator

REPO = Path(__file__).resolve().parents[2]
CLIENTS = [RunnerGenerator, VLLMGenerator, SGLangGenerator]


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn in a thread with its own event loop, as a separate
    process would serve it (so that sync clients can call it too)."""
    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
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


@pytest.fixture(scope="module")
def server_url(subset_generator: TransformersGenerator) -> Iterator[str]:
    yield from serve_in_thread(create_app(subset_generator))


@pytest.fixture(params=CLIENTS, ids=lambda cls: cls.__name__)
async def remote(request: pytest.FixtureRequest, server_url: str) -> AsyncIterator[RemoteGenerator]:
    generator = await asyncio.to_thread(request.param.connect, server_url)
    yield generator
    await generator.aclose()


async def test_connect_learns_what_the_server_declares(
    remote: RemoteGenerator, subset_generator: TransformersGenerator
) -> None:
    assert remote.name == "subset-tiny"
    assert remote.max_context == subset_generator.max_context
    if isinstance(remote, RunnerGenerator):
        assert remote.concurrency == subset_generator.concurrency
        assert await remote.health() == {"status": "ok", "model": "subset-tiny"}


async def test_round_trip_matches_the_local_model(
    remote: RemoteGenerator, subset_generator: TransformersGenerator
) -> None:
    key = f"served-{type(remote).__name__}"
    prompt = prompt_of(20, offset=11 + CLIENTS.index(type(remote)))
    stream = remote.generate(greedy(prompt, 6, cache_key=key))
    tokens = await collect(stream)
    assert tokens == greedy_reference(subset_generator, prompt, 6)
    assert stream.usage.prompt_tokens == 20
    assert stream.usage.completion_tokens == 6

    follow = [*prompt, *tokens, *prompt_of(5, offset=12)]
    again = remote.generate(greedy(follow, 4, cache_key=key))
    assert await collect(again) == greedy_reference(subset_generator, follow, 4)
    if not isinstance(remote, VLLMGenerator):  # vLLM's clients cannot name a cache key
        assert again.usage.cached_tokens == len(prompt) + len(tokens) - 1
    else:
        assert again.usage.cached_tokens >= len(prompt)


async def test_stop_tokens_cross_the_wire(remote: RemoteGenerator) -> None:
    prompt = prompt_of(10, offset=13)
    free = await collect(remote.generate(greedy(prompt, 6)))
    stopped = await collect(remote.generate(greedy(prompt, 6, stop_tokens=frozenset({free[0]}))))
    assert stopped == free[:1]


async def test_closing_the_client_stream_cancels_the_server_generation(
    remote: RemoteGenerator, subset_generator: TransformersGenerator
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


async def test_a_prompt_longer_than_the_context_is_refused(
    remote: RemoteGenerator, subset_generator: TransformersGenerator
) -> None:
    too_long = prompt_of(subset_generator.max_context + 5, offset=14)
    # Known from the probe: refused before anything is sent.
    with pytest.raises(InvalidGenerationRequest, match="context"):
        await collect(remote.generate(greedy(too_long, 3)))
    # Unknown to the client: the server refuses it, with the engine's own error.
    blind = type(remote)(remote.base_url)
    try:
        with pytest.raises(InvalidGenerationRequest, match="context"):
            await collect(blind.generate(greedy(too_long, 3)))
    finally:
        await blind.aclose()


async def test_a_model_side_error_raises_the_typed_error(server_url: str) -> None:
    remote = RunnerGenerator(server_url)
    try:
        with pytest.raises(InvalidGenerationRequest, match="prompt ids"):
            await collect(remote.generate(greedy([300_000], 3)))
        empty = GenerationRequest(prompt_tokens=[], max_tokens=3, stop_tokens=frozenset())
        with pytest.raises(InvalidGenerationRequest, match="empty"):
            await collect(remote.generate(empty))
    finally:
        await remote.aclose()


async def test_errors_have_the_engines_shapes(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url) as client:
        response = await client.post("/v1/generate", json={"prompt_tokens": [1]})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "max_tokens" in error["message"]
        text_prompt = await client.post("/v1/completions", json={"prompt": "hello"})
        assert text_prompt.status_code == 400
        assert text_prompt.json()["error"]["code"] == 400
        unknown_key = await client.post(
            "/generate", json={"input_ids": [1], "sampling_params": {"best_of": 2}}
        )
        assert unknown_key.status_code == 400
        missing = await client.get("/v1/nothing")
        assert missing.status_code == 404
        assert "error" in missing.json()


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda cls: cls.__name__)
def test_an_unreachable_engine_fails_at_connect_in_one_sentence(cls: Any) -> None:
    sock = free_socket()  # bound but never listening: connections are refused
    try:
        with pytest.raises(ModelUnavailable, match=r"^No .* answers at http://127\.0\.0\.1:"):
            cls.connect(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        sock.close()


def vocabulary_double() -> FastAPI:
    """A test double of an engine serving a model of another vocabulary (no such model
    can be had here): it answers the probe's two questions, with other token ids."""
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"data": [{"id": "llama-3-8b", "max_model_len": 8192}]}

    @app.post("/tokenize")
    async def tokenize() -> dict[str, Any]:
        return {"tokens": [128000, 9906, 1917], "count": 3}

    return app


@pytest.mark.parametrize("cls", [VLLMGenerator, SGLangGenerator], ids=lambda c: c.__name__)
def test_an_engine_of_another_vocabulary_is_refused_at_connect(cls: Any) -> None:
    for url in serve_in_thread(vocabulary_double()):
        with pytest.raises(ModelMismatch, match="o200k_harmony"):
            cls.connect(url)


async def test_a_runner_that_goes_away_mid_stream_is_model_unavailable(tmp_path: Path) -> None:
    """``python -m model_runner serve`` in its own process, killed while it streams."""
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
    url = f"http://127.0.0.1:{port}"
    try:
        generator = None
        deadline = time.monotonic() + 120
        while generator is None:
            assert process.returncode is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            try:
                generator = await asyncio.to_thread(VLLMGenerator.connect, url)
            except ModelUnavailable:
                await asyncio.sleep(0.2)
        assert generator.name == "random:tiny"
        stream = generator.generate(greedy([200006, 1428, 200008, 12], 100_000))
        iterator = aiter(stream)
        await anext(iterator)
        process.kill()
        with pytest.raises(ModelUnavailable, match=r"went away|cut the stream short"):
            async for _ in iterator:
                pass
        await generator.aclose()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        await process.wait()
