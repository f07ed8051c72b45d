"""A session whose container stops for good (killed from outside here; in life, an engine
restart without live-restore, or a gVisor sandbox ended whole for its memory) is ended as
expired with the reason, when it is next used and by the periodic check, and never
answers 503 forever; its conversation's next turn carries on in a new container, the
model told."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker
import httpx
import openai
import pytest

from interpreter.responses.code_tool import EXPIRED_NOTICE
from tests.conftest import docker_containers
from tests.doubles import final, python_call

pytestmark = [pytest.mark.docker]

TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]


def kill_container(service_name: str, sandbox_id: str) -> None:
    client = docker.from_env()
    try:
        (container,) = client.containers.list(
            filters={
                "label": [
                    f"code-interpreter.service={service_name}",
                    f"code-interpreter.sandbox={sandbox_id}",
                ]
            }
        )
        container.kill()  # SIGKILL: the container exits with 137, as an OOM-ended one does
        container.wait()
    finally:
        client.close()


def test_a_stopped_container_ends_its_session_and_the_conversation_carries_on(
    start: Callable[..., Any],
) -> None:
    client, double, server = start(
        [
            python_call("x = 42"),
            final("x is set."),
            python_call("print(x)"),
            final("It was lost."),
        ],
        preimport="",
        pool_size=0,
        reap_interval_s=3600,  # the test runs the periodic check itself
    )
    manager = server.app.state.sessions
    service_name = server.app.state.settings.service_name
    first = client.responses.create(model="scripted", input="Set x to 42.", tools=TOOLS)
    conversation = first.output[0].container_id  # type: ignore[union-attr]
    used_next, checked = (client.containers.create(name=n) for n in ("used", "checked"))
    for container_id in (conversation, used_next.id, checked.id):
        kill_container(service_name, manager.get(container_id, None).sandbox.id)

    # The next turn notices before it begins: a new container, and the model is told.
    second = client.responses.create(
        model="scripted",
        input="What is x?",
        previous_response_id=first.id,
        tools=TOOLS,
        include=["code_interpreter_call.outputs"],
    )
    assert second.status == "completed"
    call = second.output[0]
    assert call.container_id != conversation  # type: ignore[union-attr]
    assert "NameError" in call.outputs[0].logs  # type: ignore[union-attr, index]
    assert EXPIRED_NOTICE in double.prompt_text()
    with pytest.raises(openai.NotFoundError) as gone:
        client.containers.retrieve(conversation)
    assert gone.value.code == "container_expired"
    assert "was lost: its container exited (code 137" in gone.value.message

    # Used directly: 404 container_expired with the reason, not 503 again and again.
    executed = httpx.post(
        f"{server.v1}/containers/{used_next.id}/execute", json={"code": "1"}, timeout=60
    )
    assert executed.status_code == 404, executed.text
    assert executed.json()["error"]["code"] == "container_expired"
    assert "was lost" in executed.json()["error"]["message"]

    # Not used at all: the periodic check ends it, and removes the stopped containers.
    assert server.call(manager.check_sandboxes()) == 1
    with pytest.raises(openai.NotFoundError) as checked_gone:
        client.containers.retrieve(checked.id)
    assert checked_gone.value.code == "container_expired"
    live = {manager.get(second.output[0].container_id, None).sandbox.id}  # type: ignore[union-attr]
    assert len(docker_containers(service_name)) == len(live)
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert "interpreter_sessions_lost_total 3.0" in metrics
