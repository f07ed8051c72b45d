"""Notebooks out, end to end: a real server and real sandboxes, the official openai SDK
for the conversation, a scripted model double (tests/doubles.py) for exact control of
the code; the exported notebooks are read and validated with nbformat, and one is run
again, top to bottom, by nbclient against the kernel of a fresh sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from openai import OpenAI

from interpreter.api.app import create_app
from tests.conftest import RunningServer
from tests.doubles import ScriptedGenerator, final, python_call

pytestmark = [pytest.mark.docker]

TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]

FIRST_CODE = (
    "x = 6 * 7\n"
    "print('x is', x)\n"
    "import matplotlib.pyplot as plt\n"
    "plt.plot([1, 2, 3])\n"
    "plt.show()\n"
    "x / 2"
)
HAND_CODE = "y = x + 1\nprint(y)"
SECOND_CODE = "print(y * 2)"


class SandboxKernelManager(AsyncKernelManager):
    """The kernel of a running sandbox, reached through its connection file (ipc sockets
    in its run folder). nbclient drives it; it is neither started nor stopped here."""

    @property
    def has_kernel(self) -> bool:
        return True


@pytest.fixture
def server(
    make_settings: Callable[..., Any], serve: Callable[..., RunningServer]
) -> Iterator[tuple[OpenAI, RunningServer]]:
    double = ScriptedGenerator(
        [
            python_call(FIRST_CODE),
            final("x is 42, and half of it is 21."),
            python_call(SECOND_CODE),
            final("y doubled is 86."),
        ]
    )
    running = serve(create_app(make_settings(), generator=double, cleanup_on_exit=True))
    client = OpenAI(base_url=running.v1, api_key="unused", max_retries=0, timeout=120)
    yield client, running
    client.close()


def text_outputs(cell: Any) -> list[tuple[str, str]]:
    """What a code cell printed and returned, as text."""
    found = []
    for output in cell.outputs:
        if output.output_type == "stream":
            found.append((output.name, output.text))
        elif output.output_type in ("execute_result", "display_data"):
            found.append((output.output_type, output.data.get("text/plain", "")))
        elif output.output_type == "error":
            found.append(("error", f"{output.ename}: {output.evalue}"))
    return found


def rerun(notebook: Any, connection_file: Path) -> Any:
    manager = SandboxKernelManager(owns_kernel=False)
    manager.load_connection_file(str(connection_file))
    fresh = nbformat.from_dict(notebook)
    runner = NotebookClient(fresh, km=manager, timeout=60)

    async def run() -> None:
        try:
            await runner.async_execute()
        finally:
            # nbclient leaves a kernel it does not own alone, channels included.
            if runner.kc is not None:
                runner.kc.stop_channels()
            manager.context.destroy(linger=0)

    asyncio.run(run())
    return fresh


def test_a_conversation_and_its_container_export_and_run_again(server) -> None:
    client, running = server
    http = httpx.Client(base_url=running.v1, timeout=60)
    first = client.responses.create(model="scripted", input="Set x and plot.", tools=TOOLS)
    container_id = first.output[0].container_id
    # A cell run by hand in the same kernel, then told to the model with the next message,
    # as the chat page does.
    ran = http.post(f"/containers/{container_id}/execute", json={"code": HAND_CODE}).json()
    assert ran["outputs"][0]["text"] == "43\n"
    second = client.responses.create(
        model="scripted",
        previous_response_id=first.id,
        tools=TOOLS,
        input=[
            {
                "type": "code_interpreter_call",
                "id": "ci_hand",
                "code": HAND_CODE,
                "container_id": container_id,
                "status": "completed",
                "outputs": [{"type": "logs", "logs": "43\n"}],
            },
            {"type": "message", "role": "user", "content": "Double y."},
        ],
    )
    assert second.output_text == "y doubled is 86."

    # The container's notebook: every execution in order, with its outputs and counts.
    answer = http.get(f"/containers/{container_id}/notebook")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ipynb+json")
    assert f'filename="{container_id}.ipynb"' in answer.headers["content-disposition"]
    notebook = nbformat.reads(answer.text, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    assert [c.source for c in notebook.cells] == [FIRST_CODE, HAND_CODE, SECOND_CODE]
    counts = [c.execution_count for c in notebook.cells]
    assert counts == sorted(counts) and len(set(counts)) == 3
    plot = notebook.cells[0]
    assert text_outputs(plot)[0] == ("stdout", "x is 42\n")
    assert text_outputs(plot)[-1] == ("execute_result", "21.0")
    images = [o for o in plot.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1 and images[0].output_type == "display_data"
    assert text_outputs(notebook.cells[2]) == [("stdout", "86\n")]

    # Run again from the top in a fresh sandbox, by nbclient: the same text comes out.
    fresh = client.containers.create(name="rerun")
    session = running.app.state.sessions.get(fresh.id, None)
    again = rerun(notebook, session.sandbox.record.connection_file)
    assert [text_outputs(c) for c in again.cells] == [text_outputs(c) for c in notebook.cells]
    assert any("image/png" in o.get("data", {}) for o in again.cells[0].outputs)

    # The conversation's notebook: prompts and answers as Markdown between the code.
    answer = http.get(f"/responses/{second.id}/notebook")
    assert answer.status_code == 200
    conversation = nbformat.reads(answer.text, as_version=4)
    nbformat.validate(conversation)
    shape = [(c.cell_type, c.metadata.get("role")) for c in conversation.cells]
    assert shape == [
        ("markdown", "user"),
        ("code", None),
        ("markdown", "assistant"),
        ("code", None),
        ("markdown", "user"),
        ("code", None),
        ("markdown", "assistant"),
    ]
    assert "Set x and plot." in conversation.cells[0].source
    assert "half of it is 21" in conversation.cells[2].source
    # The model's code keeps every output the sandbox gave, images included...
    assert conversation.cells[1].source == FIRST_CODE
    assert text_outputs(conversation.cells[1]) == text_outputs(plot)
    assert any("image/png" in o.get("data", {}) for o in conversation.cells[1].outputs)
    # ...and a cell run by hand has the logs it was sent with.
    assert conversation.cells[3].source == HAND_CODE
    assert text_outputs(conversation.cells[3]) == [("stdout", "43\n")]
    assert conversation.cells[5].execution_count == notebook.cells[2].execution_count

    # An expired container has no notebook; its conversation still has.
    session = running.app.state.sessions.get(container_id, None)
    assert running.call(running.app.state.sessions.reap(session.expires_at() + 1)) >= 1
    gone = http.get(f"/containers/{container_id}/notebook")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "container_expired"
    assert http.get(f"/responses/{second.id}/notebook").status_code == 200
    missing = http.get("/responses/resp_nope/notebook")
    assert missing.status_code == 404 and missing.json()["error"]["message"]
    http.close()
