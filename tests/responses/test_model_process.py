"""The service's model in a process of its own (``INTERPRETER_MODEL_PROCESS=own``, the
default), with the real service process, the shipped demo model, real sandboxes and the
official openai SDK: a model process killed with SIGKILL fails only the model calls
under way, the API keeps serving, and the model comes back; a Ctrl-C ends both."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.conftest import process_alive, wait_until
from tests.sessions.conftest import remove_containers
from tests.sessions.service_process import ServiceProcess

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]
QUESTION = "What is 1234 * 5678?"


@pytest.fixture
def service_name(run_id: str) -> Iterator[str]:
    name = f"{run_id}-model-process"
    yield name
    remove_containers(name)


def model_process_of(pid: int) -> int:
    """The child of ``pid`` that runs ``python -m model_runner serve``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"model_runner" in command and b"serve" in command:
                return int(child)
    raise AssertionError(f"process {pid} has no model process")


def socket_folder(pid: int) -> Path:
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return Path(command[command.index(b"--uds") + 1].decode()).parent


def test_a_killed_model_process_fails_its_calls_and_comes_back(
    tmp_path: Path, service_name: str
) -> None:
    service = ServiceProcess.serve(tmp_path, service_name, MODEL="demo").start()
    try:
        service.wait_healthy(timeout_s=300)
        assert service.process is not None
        client = OpenAI(base_url=f"{service.base_url}/v1", api_key="unused", max_retries=0)
        first = client.responses.create(model="demo", input=QUESTION, tools=TOOLS)
        assert first.status == "completed", first.error
        model_pid = model_process_of(service.process.pid)
        folder = socket_folder(model_pid)

        # Killed while a streamed response is generating: that response fails, saying so.
        stream = client.responses.create(model="demo", input=QUESTION, tools=TOOLS, stream=True)
        killed = False
        final: Any = None
        for event in stream:
            if not killed and event.type.endswith(".delta"):
                os.kill(model_pid, signal.SIGKILL)
                killed = True
            final = event
        assert killed
        assert final.type == "response.failed"
        assert "The model failed" in final.response.error.message

        # The API does not need the model for containers and files.
        box = client.containers.create(name="while-the-model-is-away")
        client.containers.files.create(box.id, file=("note.txt", b"still here"))
        assert [f.path for f in client.containers.files.list(box.id)] == ["/mnt/data/note.txt"]

        # The model process is started again; until then, responses fail with a reason.
        failures: list[str] = []

        def answered() -> bool:
            response = client.responses.create(model="demo", input=QUESTION, tools=TOOLS)
            if response.status == "failed":
                assert response.error is not None
                failures.append(response.error.message)
            return response.status == "completed"

        wait_until(answered, timeout_s=180)
        assert all("model process exited with code -9" in m for m in failures), failures
        restarted = model_process_of(service.process.pid)
        assert restarted != model_pid and not process_alive(model_pid)
        assert socket_folder(restarted) == folder
        health = httpx.get(f"{service.base_url}/healthz", timeout=10).json()
        assert health["model"] == {
            "name": "gpt-oss-demo",
            "process": {"pid": restarted, "restarts": 1, "down_reason": None},
        }

        # A Ctrl-C reaches the service's group; the model process, in a session of its
        # own, is stopped by the service rather than by the signal, and not restarted.
        assert service.signal(signal.SIGINT, timeout_s=120) == -signal.SIGINT
        log = service.log.read_text()
        assert "Application shutdown complete" in log
        assert "KeyboardInterrupt" not in log  # a stop asked for is no crash
        assert not process_alive(restarted)
        assert not folder.exists()
        assert log.count("exited with code") == 1, log[-3000:]  # the SIGKILL's
        assert log.count("starting the model process again") == 1, log[-3000:]
    finally:
        service.stop()
