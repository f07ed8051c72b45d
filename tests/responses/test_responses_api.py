"""The Responses API loop, end to end: the official openai SDK as the client, a real
server, real Docker sandboxes, and a scripted model double (tests/doubles.py) playing
harmony completions through the real Generator interface."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseCodeInterpreterToolCall

from model_runner.errors import InvalidGenerationRequest
from tests.conftest import wait_until
from tests.doubles import final, python_call

pytestmark = [pytest.mark.docker]

TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]
INCLUDE: list[Any] = ["code_interpreter_call.outputs"]


def test_tool_call_then_answer(start) -> None:
    client, double, _ = start([python_call("print(6 * 7)"), final("The answer is 42.")])
    response = client.responses.create(
        model="scripted", input="What is 6 * 7?", tools=TOOLS, include=INCLUDE
    )
    assert isinstance(response, Response)
    assert response.status == "completed"
    call, _message = response.output
    assert isinstance(call, ResponseCodeInterpreterToolCall)
    assert call.code == "print(6 * 7)"
    assert call.status == "completed"
    assert call.container_id.startswith("cntr_")
    assert call.outputs is not None and call.outputs[0].type == "logs"
    assert call.outputs[0].logs == "42\n"
    assert response.output_text == "The answer is 42."
    # The model saw the real output of the sandbox in its second prompt.
    assert (
        "<|start|>python to=assistant<|channel|>analysis<|message|>42<|end|>"
        in double.prompt_text(1)
    )
    assert response.usage is not None and response.usage.output_tokens > 0
    assert response.usage.input_tokens >= len(double.prompts[0]) + len(double.prompts[1])


def test_outputs_only_when_included(start) -> None:
    client, _, _ = start([python_call("1 + 1"), final("2")])
    response = client.responses.create(model="scripted", input="1+1?", tools=TOOLS)
    call = response.output[0]
    assert isinstance(call, ResponseCodeInterpreterToolCall)
    assert call.outputs is None


def test_stream_events_in_order(start) -> None:
    client, _, _ = start(
        [python_call("for i in range(3):\n    print(i)"), final("Printed 0 to 2.")]
    )
    events = list(
        client.responses.create(
            model="scripted", input="Count", tools=TOOLS, include=INCLUDE, stream=True
        )
    )
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed", events[-1].response.error
    assert [e.sequence_number for e in events] == list(range(len(events)))
    call_events = [
        t
        for t in types
        if t.startswith("response.code_interpreter_call") or t.startswith("response.output_item")
    ]
    expected_call_order = [
        "response.output_item.added",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.output_item.done",
    ]
    deduped = [t for i, t in enumerate(call_events) if i == 0 or t != call_events[i - 1]]
    assert deduped[: len(expected_call_order)] == expected_call_order
    code = "".join(e.delta for e in events if e.type == "response.code_interpreter_call_code.delta")
    assert code == "for i in range(3):\n    print(i)"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Printed 0 to 2."
    for kind in (
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
    ):
        assert kind in types
    completed = events[-1].response
    assert completed.output[0].outputs[0].logs == "0\n1\n2\n"


def test_follow_up_keeps_kernel_state(start) -> None:
    client, double, _ = start(
        [
            python_call("x = 42"),
            final("Done: x is 42."),
            python_call("print(x ** 2)"),
            final("1764"),
        ]
    )
    first = client.responses.create(model="scripted", input="Set x to 42.", tools=TOOLS)
    second = client.responses.create(
        model="scripted",
        input="What is x squared?",
        tools=TOOLS,
        include=INCLUDE,
        previous_response_id=first.id,
    )
    first_call, second_call = first.output[0], second.output[0]
    assert first_call.container_id == second_call.container_id
    assert second_call.outputs[0].logs == "1764\n"
    assert second.previous_response_id == first.id
    # The follow-up prompt replays the earlier call, output and answer, byte-stable.
    assert double.prompts[2][: len(double.prompts[1])] == double.prompts[1]
    assert "Set x to 42." in double.prompt_text(2) and "x = 42" in double.prompt_text(2)
    # Same conversation, same prefix-cache key.
    assert double.requests[0].cache_key == double.requests[2].cache_key == first.id


def test_cache_key_from_prompt_cache_key_or_affinity_header(start) -> None:
    client, double, _ = start([final("a"), final("b")])
    client.responses.create(model="scripted", input="x", prompt_cache_key="key-1")
    client.responses.create(
        model="scripted", input="x", extra_headers={"x-session-affinity": "affinity-7"}
    )
    assert [r.cache_key for r in double.requests] == ["key-1", "affinity-7"]


def test_models_list_the_served_model(start) -> None:
    client, _, _ = start([], model="demo")
    models = client.models.list()
    assert [m.id for m in models.data] == ["demo"]
    assert client.models.retrieve("demo").id == "demo"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-5")


def test_retrieve_delete_and_input_items(start) -> None:
    client, _, _ = start([final("Hello.")])
    response = client.responses.create(model="scripted", input="Hi", tools=TOOLS)
    assert response.output_text == "Hello."
    assert response.output[0].type == "message"
    fetched = client.responses.retrieve(response.id)
    assert fetched.id == response.id and fetched.output_text == "Hello."
    items = client.responses.input_items.list(response.id)
    assert [i.type for i in items.data] == ["message"]
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_background_then_poll(start) -> None:
    client, double, _ = start(
        [python_call("import time; time.sleep(0.5); print('slept')"), final("Slept.")]
    )
    queued = client.responses.create(model="scripted", input="Sleep", tools=TOOLS, background=True)
    assert queued.status == "queued"
    deadline = time.monotonic() + 60
    while True:
        polled = client.responses.retrieve(queued.id)
        if polled.status not in ("queued", "in_progress"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert polled.status == "completed"
    assert polled.output_text == "Slept."
    # The model is told it runs in the background (the runner lets interactive ones
    # start first); an interactive request is not.
    assert [r.background for r in double.requests] == [True, True]
    client.responses.create(model="scripted", input="Now")
    assert double.requests[-1].background is False


def test_cancel_background_interrupts_the_running_execution(start) -> None:
    code = "x = 1\nopen('/mnt/data/running', 'w').close()\nimport time\ntime.sleep(60)"
    client, _, server = start([python_call(code), final("never")])
    queued = client.responses.create(model="scripted", input="Wait", tools=TOOLS, background=True)

    def code_is_running() -> bool:
        output = client.responses.retrieve(queued.id).output
        if not output or output[0].type != "code_interpreter_call":
            return False
        # Named before it exists, the container is waited for while it is created.
        files = client.containers.files.list(output[0].container_id)
        return any(f.path == "/mnt/data/running" for f in files)

    # The code itself says it runs: the file it writes shows in the container.
    wait_until(code_is_running, timeout_s=60)
    call = client.responses.retrieve(queued.id).output[0]
    assert isinstance(call, ResponseCodeInterpreterToolCall)
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(queued.id).status == "cancelled"
    # The cancel returned once the execution had stopped: the session is free at once,
    # and the kernel kept what ran before the interrupt.
    session = server.app.state.sessions.get(call.container_id, None)
    assert session.busy == 0
    after = httpx.post(
        f"{server.v1}/containers/{call.container_id}/execute", json={"code": "print(x)"}
    ).json()
    assert after["outputs"] == [{"type": "stream", "name": "stdout", "text": "1\n"}]


def test_file_written_is_cited(start) -> None:
    code = "with open('/mnt/data/squares.txt', 'w') as f:\n    f.write('1 4 9')"
    client, double, _ = start([python_call(code), final("Saved to /mnt/data/squares.txt.")])
    response = client.responses.create(model="scripted", input="Write squares", tools=TOOLS)
    assert "[file saved: /mnt/data/squares.txt]" in double.prompt_text(1)
    message = response.output[-1]
    annotation = message.content[0].annotations[0]
    assert annotation.type == "container_file_citation"
    assert annotation.filename == "squares.txt"
    text = message.content[0].text
    assert text[annotation.start_index : annotation.end_index] == "/mnt/data/squares.txt"
    content = client.containers.files.content.retrieve(
        annotation.file_id, container_id=annotation.container_id
    )
    assert content.read() == b"1 4 9"


def test_images_are_served(start) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"
    client, double, server = start([python_call(code), final("Plotted.")])
    response = client.responses.create(model="scripted", input="Plot", tools=TOOLS, include=INCLUDE)
    outputs = response.output[0].outputs
    images = [o for o in outputs if o.type == "image"]
    assert len(images) == 1
    assert images[0].url.startswith(server.base_url)
    png = httpx.get(images[0].url).content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[image displayed to the user]" in double.prompt_text(1)


def test_explicit_container_and_expired_previous(start) -> None:
    client, double, _server = start(
        [python_call("y = 5"), final("ok"), python_call("print(y)"), final("?")]
    )
    container = client.containers.create(name="mine")
    tools: list[Any] = [{"type": "code_interpreter", "container": container.id}]
    first = client.responses.create(model="scripted", input="Set y", tools=tools)
    assert first.output[0].container_id == container.id
    client.containers.delete(container.id)
    # The container is gone: an explicit id is an error...
    with pytest.raises(openai.NotFoundError):
        client.responses.create(
            model="scripted", input="y?", tools=tools, previous_response_id=first.id
        )
    # ...but an auto container continues in a new one, and the model is told.
    second = client.responses.create(
        model="scripted", input="y?", tools=TOOLS, include=INCLUDE, previous_response_id=first.id
    )
    assert second.output[0].container_id != container.id
    assert "NameError" in second.output[0].outputs[0].logs
    assert "earlier turns has expired" in double.prompt_text(-1)


def test_bad_input(start) -> None:
    client, _, _ = start([])
    with pytest.raises(openai.NotFoundError):
        client.responses.create(
            model="scripted", input="x", tools=TOOLS, previous_response_id="resp_nope"
        )
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.responses.create(model="scripted", input="x", tools=[{"type": "web_search"}])
    assert "web_search" in str(excinfo.value)
    with pytest.raises(openai.UnprocessableEntityError):
        client.responses.create(model="scripted", input="x", temperature=5)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(
            model="scripted",
            input="x",
            tools=[{"type": "code_interpreter", "container": "cntr_nope"}],
        )


def test_model_that_never_stops_is_incomplete(start) -> None:
    client, _, _ = start(["<|channel|>final<|message|>" + "la " * 200])
    response = client.responses.create(
        model="scripted", input="Sing", tools=TOOLS, max_output_tokens=32
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_malformed_harmony_fails_cleanly(start) -> None:
    client, _, _ = start(["<|message|><|message|><|call|>"])
    response = client.responses.create(model="scripted", input="x", tools=TOOLS)
    assert response.status == "failed"
    assert response.error is not None and response.error.code == "server_error"


def test_unknown_tool_fails_cleanly(start) -> None:
    client, _, _ = start(["<|channel|>commentary to=functions.search json<|message|>{}<|call|>"])
    response = client.responses.create(model="scripted", input="x", tools=TOOLS)
    assert response.status == "failed"
    assert "unknown tool" in response.error.message


def test_model_runner_error_fails_cleanly(start) -> None:
    client, _, _ = start([InvalidGenerationRequest("the prompt is longer than the context")])
    response = client.responses.create(model="scripted", input="x", tools=TOOLS)
    assert response.status == "failed"
    assert "longer than the context" in response.error.message


def test_tool_call_limit(start) -> None:
    client, double, _ = start([python_call("1"), python_call("2"), python_call("3")])
    response = client.responses.create(model="scripted", input="x", tools=TOOLS, max_tool_calls=1)
    assert response.status == "incomplete"
    assert "No more tool calls" in double.prompt_text(-1)


def test_disconnect_mid_stream_cancels_and_sandbox_survives(start) -> None:
    code = "x = 1\nopen('/mnt/data/running', 'w').close()\nimport time\ntime.sleep(60)"
    client, _double, server = start([python_call(code), final("late")])
    with client.responses.create(model="scripted", input="x", tools=TOOLS, stream=True) as stream:
        container_id = None
        for event in stream:
            if (
                event.type == "response.output_item.added"
                and event.item.type == "code_interpreter_call"
            ):
                container_id = event.item.container_id
            if event.type == "response.code_interpreter_call.interpreting":
                break
        assert container_id is not None
        # Leave once the code itself says it runs (the file it writes shows).
        wait_until(
            lambda: any(
                f.path == "/mnt/data/running" for f in client.containers.files.list(container_id)
            ),
            timeout_s=60,
        )
    # The execution was interrupted, not left to run a minute; the kernel kept its state.
    session = server.app.state.sessions.get(container_id, None)
    wait_until(lambda: session.busy == 0, timeout_s=30)
    result = httpx.post(
        f"{server.v1}/containers/{container_id}/execute", json={"code": "print(x)"}, timeout=30
    ).json()
    assert result["outputs"] == [{"type": "stream", "name": "stdout", "text": "1\n"}]


def test_one_key_at_its_response_quota_does_not_affect_another(start) -> None:
    long_answer = final("word " * 400)  # a few seconds at the double's pace
    _, _, server = start(
        [long_answer, final("done"), final("done")],
        token_delay_s=0.01,
        api_keys="key-a,key-b",
        max_responses_per_key=1,
    )
    with (
        OpenAI(base_url=server.v1, api_key="key-a", max_retries=0) as key_a,
        OpenAI(base_url=server.v1, api_key="key-b", max_retries=0) as key_b,
    ):
        running = key_a.responses.create(model="scripted", input="long", background=True)
        with pytest.raises(openai.RateLimitError) as refused:
            key_a.responses.create(model="scripted", input="another")
        assert "This API key has 1 responses under way" in str(refused.value)
        assert refused.value.response.headers["retry-after"]
        assert key_b.responses.create(model="scripted", input="mine").status == "completed"
        key_a.responses.cancel(running.id)
