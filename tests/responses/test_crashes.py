"""The real service process killed with SIGKILL in the middle of things, and started
again: a streamed response, two background responses (one before its code ran, one
after) and an upload into a container were all under way.

The model is a scripted double (tests/doubles.py) served over HTTP from the test
process, so it outlives the service and holds each response exactly where the test
wants it (``Paused``), with no clock involved; the real transformers path is tested in
tests/model_runner."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import wait_until
from tests.doubles import Paused, ScriptedGenerator, final, python_call, served_over_http
from tests.sessions.conftest import remove_containers
from tests.sessions.service_process import ServiceProcess

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]
BIG = 64 << 20  # an upload large enough to be caught half-way (see below)


@pytest.fixture
def service_name(run_id: str) -> Iterator[str]:
    name = f"{run_id}-crash"
    yield name
    remove_containers(name)


def container_of(service_name: str, sandbox_id: str) -> Any:
    client = docker.from_env()
    try:
        (found,) = client.containers.list(
            filters={
                "label": [
                    f"code-interpreter.service={service_name}",
                    f"code-interpreter.sandbox={sandbox_id}",
                ]
            }
        )
        found.reload()
        return found
    finally:
        client.close()


def sandbox_of(root: Path, container_id: str) -> str:
    record = json.loads((root / "data" / "sessions" / f"{container_id}.json").read_text())
    return str(record["sandbox_id"])


def test_a_killed_service_leaves_nothing_half_done(tmp_path: Path, service_name: str) -> None:
    streamed = Paused("<|channel|>final<|message|>Thinking about", " it.<|return|>")
    fresh = Paused("<|channel|>analysis<|message|>Planning", " more.<|return|>")
    after_code = Paused("<|channel|>final<|message|>Wrote", " it.<|return|>")
    double = ScriptedGenerator(
        [
            python_call("x = 42"),  # the first turn, completed
            final("x is 42."),
            streamed,  # the second turn, streamed: killed while it is being written
            fresh,  # a background response, killed before any code ran
            python_call("open('/mnt/data/ran.txt', 'a').write('once')"),  # another,
            after_code,  # killed after its code ran
            python_call("y = 7"),  # the first background response, run again
            final("y is 7."),
            python_call("print(x)"),  # the conversation, continued after the restart
            final("x is still 42."),
        ]
    )
    with served_over_http(double) as model_url, contextlib.ExitStack() as closing:
        settings = {"model": model_url, "background_workers": "2"}
        first = ServiceProcess.serve(tmp_path, service_name, **settings).start()
        released = [streamed, fresh, after_code]
        try:
            first.wait_healthy()
            assert double.warm_ups == 1  # the start asked its model for a token first
            client = closing.enter_context(
                OpenAI(base_url=f"{first.base_url}/v1", api_key="none", max_retries=0)
            )
            done = client.responses.create(model="m", input="Set x to 42.", tools=TOOLS)
            assert done.status == "completed"
            events = iter(
                closing.enter_context(
                    client.responses.create(
                        model="m", input="Go on.", tools=TOOLS, stream=True,
                        previous_response_id=done.id,
                    )
                )
            )  # fmt: skip
            streamed_id = next(events).response.id  # type: ignore[union-attr]
            # Waited for, not read up to: the last event before the pause can come
            # before the pause is reached, and then no event follows.
            assert streamed.reached.wait(60)
            queued = client.responses.create(model="m", input="Plan.", tools=TOOLS, background=True)
            assert fresh.reached.wait(60)
            ran = client.responses.create(model="m", input="Write.", tools=TOOLS, background=True)
            assert after_code.reached.wait(60)
            # Stored after its code ran: a restart must not run it again.
            assert client.responses.retrieve(ran.id).output[0].type == "code_interpreter_call"

            # An upload caught half-way into a container's /mnt/data.
            box = client.containers.create(name="upload")
            agent = container_of(service_name, sandbox_of(tmp_path, box.id))
            agent_pid = agent.attrs["State"]["Pid"]  # the sandbox's PID 1, as the host sees it
            partial = Path(f"/proc/{agent_pid}/root/mnt/data/.big.bin.upload")
            # Slowed to a crawl (1% of a CPU) so that the upload is still going when it
            # is seen; then stopped, so that it certainly is when the service is killed.
            subprocess.run(["docker", "update", "--cpus", "0.01", agent.id], check=True)
            upload_failures: list[Exception] = []
            uploading = threading.Thread(
                target=_upload, args=(first.base_url, box.id, upload_failures), daemon=True
            )
            uploading.start()
            wait_until(partial.exists, timeout_s=120, step_s=0.01)
            os.kill(agent_pid, signal.SIGSTOP)
            assert partial.stat().st_size < BIG
            assert not partial.with_name("big.bin").exists()
        finally:
            first.signal(signal.SIGKILL)
        os.kill(agent_pid, signal.SIGCONT)
        subprocess.run(["docker", "update", "--cpus", "1", agent.id], check=True)
        # The agent, left with half a body and a closed connection, throws it away.
        wait_until(lambda: not partial.exists(), timeout_s=60)
        uploading.join(timeout=60)
        assert isinstance(upload_failures[0], openai.APIConnectionError)  # never answered

        second = ServiceProcess.serve(tmp_path, service_name, "--cleanup-on-exit", **settings)
        second.start()
        try:
            second.wait_healthy()
            assert double.warm_ups == 2
            client = closing.enter_context(
                OpenAI(base_url=f"{second.base_url}/v1", api_key="none", max_retries=0)
            )
            # The streamed response: failed, saying why; never in progress.
            cut = client.responses.retrieve(streamed_id)
            assert cut.status == "failed" and cut.error is not None
            assert "did not finish" in cut.error.message
            # The background one that had run no code runs again, to the end.
            wait_until(lambda: client.responses.retrieve(queued.id).status == "completed", 120)
            assert client.responses.retrieve(queued.id).output_text == "y is 7."
            # The one that had: failed rather than run twice, and its code ran once.
            twice = client.responses.retrieve(ran.id)
            assert twice.status == "failed" and twice.error is not None
            assert "not run again" in twice.error.message
            ran_in = twice.output[0].container_id  # type: ignore[union-attr]
            (written,) = client.containers.files.list(ran_in).data
            content = client.containers.files.content.retrieve(written.id, container_id=ran_in)
            assert content.read() == b"once"
            # The conversation goes on from the response that was cut, in the same kernel.
            after = client.responses.create(
                model="m", input="And x?", tools=TOOLS, previous_response_id=streamed_id,
                include=["code_interpreter_call.outputs"],
            )  # fmt: skip
            assert after.status == "completed"
            assert after.output[0].outputs[0].logs == "42\n"  # type: ignore[union-attr, index]
            # No trace of the upload: not listed, not in /mnt/data, not even hidden.
            assert client.containers.files.list(box.id).data == []
            listing = httpx.post(
                f"{second.base_url}/v1/containers/{box.id}/execute",
                json={"code": "import os; print(os.listdir('/mnt/data'))"},
                timeout=60,
            ).json()
            assert listing["outputs"][0]["text"] == "[]\n"
        finally:
            second.signal(signal.SIGTERM)
            for paused in released:
                paused.gate.set()


def _upload(base_url: str, container_id: str, failures: list[Exception]) -> None:
    with OpenAI(base_url=f"{base_url}/v1", api_key="none", max_retries=0, timeout=600) as client:
        try:
            client.containers.files.create(container_id, file=("big.bin", b"\1" * BIG))
        except Exception as exc:
            failures.append(exc)
