"""A local model in a process of its own (``RunnerProcess``): the real child, started by
``python -m model_runner serve`` on a unix socket, the shipped demo model behind it.
Processes are killed with SIGKILL, as the kernel's OOM killer or a crash would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runner_fixtures import collect, greedy

from model_runner.errors import ModelNotFound, ModelUnavailable
from model_runner.harmony import load_encoding
from model_runner.loading import load_generator
from model_runner.process import RunnerProcess
from model_runner.startup import WARM_UP_PROMPT
from tests.conftest import process_alive

REPO = Path(__file__).resolve().parents[2]
QUESTION = "<|start|>user<|message|>What is 1234 * 5678?<|end|><|start|>assistant"


def harmony_prompt() -> list[int]:
    return list(load_encoding().encode(QUESTION, allowed_special="all"))


async def until(condition: object, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def runner() -> AsyncIterator[RunnerProcess]:
    process = await asyncio.to_thread(RunnerProcess.start, "demo")
    yield process
    await process.aclose()


async def test_the_child_serves_what_the_model_in_this_process_would(
    runner: RunnerProcess,
) -> None:
    assert runner.pid is not None and runner.pid != os.getpid()
    assert (runner.name, runner.default_temperature, runner.max_context) == (
        "gpt-oss-demo", 0.0, 2048
    )  # fmt: skip
    inline = await asyncio.to_thread(load_generator, "demo", device="cpu")
    request = greedy(harmony_prompt(), 40, stop_tokens=frozenset({200012}))
    apart = await collect(runner.generate(request))
    assert apart == await collect(inline.generate(request))
    assert apart[-1] == 200012  # <|call|>: the python call is complete
    assert "1234 * 5678" in load_encoding().decode(apart)


async def test_a_killed_child_fails_its_generations_and_is_started_again(
    runner: RunnerProcess,
) -> None:
    first = runner.pid
    assert first is not None
    # A generation long enough to be running when the child dies.
    stream = runner.generate(greedy(harmony_prompt(), 1500))
    tokens = aiter(stream)
    await anext(tokens)
    os.kill(first, signal.SIGKILL)
    with pytest.raises(ModelUnavailable):
        async for _ in tokens:
            pass

    # Until it is back (a second at least, then the model loads), new ones say why.
    await until(lambda: runner.down_reason is not None)
    with pytest.raises(ModelUnavailable, match="exited with code -9"):
        await collect(runner.generate(greedy(harmony_prompt(), 4)))

    await until(lambda: runner.restarts == 1 and runner.down_reason is None)
    assert runner.pid not in (None, first)
    request = greedy(harmony_prompt(), 40, stop_tokens=frozenset({200012}))
    assert "1234 * 5678" in load_encoding().decode(await collect(runner.generate(request)))


async def test_closing_stops_the_child_and_removes_its_socket() -> None:
    runner = await asyncio.to_thread(RunnerProcess.start, "demo")
    pid, folder = runner.pid, Path(runner.socket_path).parent
    assert pid is not None and folder.is_dir()
    assert folder.stat().st_mode & 0o077 == 0  # nobody else may reach the socket
    await runner.aclose()
    assert not process_alive(pid)
    assert not folder.exists()


async def test_a_start_failure_is_the_childs_own_error() -> None:
    with pytest.raises(ModelNotFound, match=r"no checkpoint folder at \./no-such-checkpoint"):
        await asyncio.to_thread(RunnerProcess.start, "./no-such-checkpoint")


def test_the_child_ends_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    """No model is left running, and no socket folder, after the service is killed."""
    script = (
        "import os, signal\n"
        "from model_runner.process import RunnerProcess\n"
        "runner = RunnerProcess.start('demo')\n"
        "print(runner.pid, runner.socket_path, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    # The child inherits the parent's output: only the first line is read, not to its end.
    with (tmp_path / "parent.log").open("wb") as log:
        parent = subprocess.Popen(
            [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=log
        )
    assert parent.stdout is not None
    pid_text, socket_path = parent.stdout.readline().decode().split()
    pid = int(pid_text)
    try:
        assert parent.wait(60) == -signal.SIGKILL
        deadline = time.monotonic() + 60
        while process_alive(pid) or Path(socket_path).parent.exists():
            assert time.monotonic() < deadline, "the child outlived its parent"
            time.sleep(0.05)
    finally:
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)
        parent.stdout.close()


def serving_on(socket_path: str) -> list[int]:
    """Processes whose command line names ``socket_path``: children serving on it."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if socket_path.encode() in command and process_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


async def test_a_restart_that_fails_is_tried_again_and_says_why(runner: RunnerProcess) -> None:
    runner.spec = "./no-such-checkpoint"  # the next start fails, as a model gone would
    assert runner.pid is not None
    os.kill(runner.pid, signal.SIGKILL)
    await until(lambda: "starting it again failed" in (runner.down_reason or ""))
    with pytest.raises(ModelUnavailable, match="no checkpoint folder at"):
        await collect(runner.generate(greedy(harmony_prompt(), 4)))
    assert runner.restarts == 0 and runner.pid is None

    runner.spec = "demo"  # the next try, after a longer wait, finds it
    await until(lambda: runner.down_reason is None)
    assert runner.restarts == 1
    request = greedy(harmony_prompt(), 40, stop_tokens=frozenset({200012}))
    assert "1234 * 5678" in load_encoding().decode(await collect(runner.generate(request)))


async def test_closing_while_a_restart_is_under_way_leaves_no_child() -> None:
    runner = await asyncio.to_thread(RunnerProcess.start, "demo")
    first = runner.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    # A new child exists and is loading the model: the restart is under way.
    await until(lambda: [pid for pid in serving_on(runner.socket_path) if pid != first])
    assert runner.down_reason is not None
    await runner.aclose()
    assert serving_on(runner.socket_path) == []
    assert runner.restarts == 0
    assert not Path(runner.socket_path).parent.exists()


async def test_a_child_that_exits_once_the_service_is_stopping_stays_down() -> None:
    """A stop that signals the service and the child at once (systemd's) does not load
    the model again on the way out."""
    runner = await asyncio.to_thread(RunnerProcess.start, "demo")
    runner.begin_shutdown()
    assert runner.pid is not None and runner._watcher is not None
    os.kill(runner.pid, signal.SIGTERM)
    await asyncio.to_thread(runner._watcher.join, 60)  # it ends instead of restarting
    assert not runner._watcher.is_alive()
    assert runner.restarts == 0 and serving_on(runner.socket_path) == []
    await runner.aclose()


def test_a_service_with_a_local_model_never_imports_torch() -> None:
    """The model's stack lives in the child: the service's process stays without it."""
    script = (
        "import asyncio, sys\n"
        "from interpreter.api.app import load_model\n"
        "from interpreter.config import Settings\n"
        "model = load_model(Settings(model='demo'))\n"
        "heavy = {'torch', 'transformers'} & set(sys.modules)\n"
        "asyncio.run(model.aclose())\n"
        "assert type(model).__name__ == 'RunnerProcess' and not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=300)


async def test_the_child_warms_its_model_up_before_the_first_request(
    runner: RunnerProcess,
) -> None:
    """The child generated from ``WARM_UP_PROMPT`` before serving: a first request that
    begins the same way finds those tokens in the prefix cache."""
    warm = load_encoding().encode(WARM_UP_PROMPT, allowed_special="all")
    prompt = harmony_prompt()
    shared = next(i for i, (a, b) in enumerate(zip(warm, prompt, strict=False)) if a != b)
    assert shared == 3  # <|start|>user<|message|>, then the messages differ
    stream = runner.generate(greedy(prompt, 1))
    await collect(stream)
    assert stream.usage.cached_tokens == shared
