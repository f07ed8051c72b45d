"""Start-up with a model that cannot load, or a served one that does not answer, stops
before any sandbox exists; one that answers no warm-up delays the start by a bound."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from interpreter.api.app import create_app
from model_runner.errors import ModelNotFound
from model_runner.generator import GenerationRequest, GenerationStream, GenerationUsage
from tests.conftest import docker_containers
from tests.doubles import ScriptedGenerator

pytestmark = [pytest.mark.docker]


async def test_a_missing_model_stops_start_up_and_leaves_no_sandbox(
    make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    settings = make_settings(model=str(tmp_path / "no-such-checkpoint"), pool_size=2)
    app = create_app(settings, cleanup_on_exit=True)
    with pytest.raises(ModelNotFound):
        async with app.router.lifespan_context(app):
            pass
    assert docker_containers(settings.service_name) == []


def test_an_engine_that_does_not_answer_stops_the_service_in_one_sentence(
    make_settings: Callable[..., Any],
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        port = sock.getsockname()[1]
        settings = make_settings()
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERPRETER_")}
        env.update(
            INTERPRETER_MODEL=f"vllm+http://127.0.0.1:{port}",
            INTERPRETER_DATA_DIR=str(settings.data_dir),
            INTERPRETER_RUN_ROOT=str(settings.run_root),
            INTERPRETER_SERVICE_NAME=settings.service_name,
        )
        done = subprocess.run(
            [sys.executable, "-m", "interpreter", "serve", "--port", str(port + 1)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        sock.close()
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(
        f"Cannot start with INTERPRETER_MODEL=vllm+http://127.0.0.1:{port}: "
        f"No vLLM server answers at http://127.0.0.1:{port}"
    )
    assert docker_containers(settings.service_name) == []


class SilentModel(ScriptedGenerator):
    """A double of an engine that takes every request and never answers it."""

    def __init__(self) -> None:
        super().__init__([])
        self.asked = 0
        self.first_asked = asyncio.Event()

    def generate(self, request: GenerationRequest) -> GenerationStream:
        self.asked += 1
        self.first_asked.set()
        usage = GenerationUsage(prompt_tokens=len(request.prompt_tokens))
        return GenerationStream(self._never(), usage)

    async def _never(self) -> AsyncIterator[int]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        yield 0


def warming_up(make_settings: Callable[..., Any], model: SilentModel, limit_s: float) -> FastAPI:
    """A service that warms ``model`` up before serving, for at most ``limit_s``."""
    settings = make_settings(model_warm_up_timeout_s=limit_s, pool_size=0)
    return create_app(settings, generator=model, warm_up_model=True, cleanup_on_exit=True)


async def test_a_start_whose_model_gives_no_warm_up_token_serves_after_the_limit(
    make_settings: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    silent = SilentModel()
    app = warming_up(make_settings, silent, limit_s=0.2)
    with caplog.at_level(logging.WARNING):
        async with app.router.lifespan_context(app):
            assert silent.asked == 1  # started, serving, the warm-up given up
            assert silent.cancelled == 1
    assert "the model gave no token in 0.2 s of warm-up" in caplog.text

    # A limit of 0 asks for no warm-up at all.
    skipped = SilentModel()
    app = warming_up(make_settings, skipped, limit_s=0)
    async with app.router.lifespan_context(app):
        assert skipped.asked == 0


async def test_a_stop_asked_for_during_the_warm_up_ends_it_at_once(
    make_settings: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    silent = SilentModel()
    app = warming_up(make_settings, silent, limit_s=3600)  # only the stop can end it

    async def stop_once_asked() -> None:
        await silent.first_asked.wait()
        app.state.responses.begin_shutdown()  # what Ctrl-C or SIGTERM calls first

    stopping = asyncio.create_task(stop_once_asked())
    with caplog.at_level(logging.INFO):
        async with app.router.lifespan_context(app):
            assert silent.cancelled == 1
    await stopping
    assert "a stop was asked for during the model's warm-up" in caplog.text
