"""The Responses API with real models, not the scripted double: the real transformers
path (a tiny random-weight gpt-oss) and the shipped demo checkpoint, through a real
server, real sandboxes and the official openai SDK. The demo checkpoint runs three
ways: with transformers in the model process the service starts (its default), on a
thread of the service's own process, and converted to GGUF behind llama.cpp's own
server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openai import OpenAI

from interpreter.api.app import create_app
from interpreter.responses import turn_builder
from model_runner.demo.data import EVAL_SEED, FAMILIES, conversations
from tests.conftest import RunningServer, settings_for_test, start_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]


@pytest.fixture(autouse=True)
def same_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every conversation here starts on one date: the system message holds it, so on
    another day the same greedy model would be given another prompt."""
    monkeypatch.setattr(turn_builder, "today", lambda: "2026-12-01")


@pytest.fixture(scope="module")
def demo_client(tmp_path_factory: pytest.TempPathFactory, run_id: str) -> Iterator[OpenAI]:
    """One service with the demo model for every family here: its model process starts
    once rather than once a test."""
    settings = settings_for_test(tmp_path_factory.mktemp("demo"), run_id, model="demo")
    server = start_server(create_app(settings, cleanup_on_exit=True))
    client = OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=300)
    yield client
    client.close()
    server.stop()


@pytest.fixture
def client_for(
    make_settings: Callable[..., Any], serve: Callable[..., RunningServer]
) -> Iterator[Callable[[str], OpenAI]]:
    clients: list[OpenAI] = []

    def start(model: str, **settings: Any) -> OpenAI:
        server = serve(create_app(make_settings(model=model, **settings), cleanup_on_exit=True))
        client = OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=300)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()


def test_random_weights_end_cleanly_and_hit_the_prefix_cache(client_for) -> None:
    """Random weights write garbage: whatever it is, the response ends with a status and
    a reason, never a server error; and the same prompt twice is served from the cache."""
    client = client_for("random:tiny")
    responses = [
        client.responses.create(
            model="random:tiny",
            input="What is 2 + 2?",
            tools=TOOLS,
            max_output_tokens=24,
            max_tool_calls=1,
            prompt_cache_key="same-conversation",
        )
        for _ in range(2)
    ]
    for response in responses:
        assert response.status in ("completed", "incomplete", "failed")
        if response.status == "failed":
            assert response.error is not None and response.error.message
        if response.status == "incomplete":
            assert response.incomplete_details is not None
        assert response.usage is not None and response.usage.output_tokens > 0
    first, second = (r.usage for r in responses)
    assert first is not None and second is not None
    # The second request's first prompt is the first one's: all but the last token reused.
    assert second.input_tokens_details.cached_tokens > 0


def run_conversation(client: OpenAI, family: str) -> list[Any]:
    """The first evaluation conversation of ``family``, turn after turn in one
    container; the responses."""
    conversation = conversations(EVAL_SEED, len(FAMILIES), families=[family])[0]
    tools = TOOLS
    if conversation.files:
        container = client.containers.create(name=f"demo-{family}")
        for name, text in conversation.files.items():
            client.containers.files.create(container.id, file=(name, text.encode()))
        tools = [{"type": "code_interpreter", "container": container.id}]
    responses: list[Any] = []
    for turn in conversation.turns:
        response = client.responses.create(
            model="demo",
            input=turn.user,
            instructions=conversation.instructions,
            tools=tools,
            previous_response_id=responses[-1].id if responses else None,
            include=["code_interpreter_call.outputs"],
        )
        assert response.status == "completed", response.error
        assert response.output_text.strip(), turn.user
        responses.append(response)
    return responses


@pytest.mark.parametrize("family", FAMILIES)
def test_demo_model_runs_each_family_end_to_end(demo_client: OpenAI, family: str) -> None:
    """The shipped checkpoint, through the same loader as any gpt-oss checkpoint: it
    writes code that runs in the sandbox without an error, the outputs come back, and it
    answers. Whether the answer is right is the evaluation's to measure
    (``model_runner/demo/evaluate.py``, ``bench/eval_demo.py``), over hundreds of
    conversations: this small model is often wrong, so one conversation's numbers would
    make a test of luck. (Greedy decoding on the CPU is reproducible, so what this
    conversation does is the same every run.)"""
    check_family_end_to_end(run_conversation(demo_client, family), family)


def test_demo_model_on_a_thread_of_the_service(client_for) -> None:
    """``INTERPRETER_MODEL_PROCESS=inline``: the same model, no child process."""
    client = client_for("demo", model_process="inline")
    check_family_end_to_end(run_conversation(client, "state"), "state")


def check_family_end_to_end(responses: list[Any], family: str) -> None:
    for response in responses:
        calls = [item for item in response.output if item.type == "code_interpreter_call"]
        assert calls, "the model answered without running code"
        for call in calls:
            logs = "".join(o.logs for o in call.outputs if o.type == "logs")
            # For the state family, no NameError in the second turn: the same kernel.
            assert "Error" not in logs, (call.code, logs)
    if family == "plot":
        images = [o for o in calls[-1].outputs or [] if o.type == "image"]
        assert images, "the plot came back without an image"
    if family == "file":
        annotations = responses[-1].output[-1].content[0].annotations
        assert any(a.type == "container_file_citation" for a in annotations)


@pytest.mark.parametrize("family", FAMILIES)
def test_demo_model_on_llama_cpp_carries_each_family_through_the_loop(
    client_for, request: pytest.FixtureRequest, family: str
) -> None:
    """The same conversations through llama.cpp's own server (the checkpoint converted to
    GGUF): every turn completes with an answer, and any code the model wrote ran and
    came back. What the model answers is not asserted here: that is the evaluation's.
    The server is greedy (``--temp 0``), and the service takes the temperature of a
    request that names none from it, so these conversations are the same every run."""
    client = client_for("llamacpp+" + request.getfixturevalue("llama_server"))
    for response in run_conversation(client, family):
        assert response.usage is not None and response.usage.output_tokens > 0
        for item in response.output:
            if item.type == "code_interpreter_call":
                assert item.status == "completed", item
                assert item.outputs is not None, item.code


def test_a_fresh_services_first_response_finds_the_system_message_cached(client_for) -> None:
    """Before it serves, the service generates one token from a new conversation's
    prompt (``ResponsesService.warm_up``), so its first response reuses the system
    message from the model's prefix cache, as every later one does."""
    client = client_for("random:tiny")
    first, later = [
        client.responses.create(
            model="random:tiny",
            input=text,
            tools=TOOLS,
            max_output_tokens=16,
            max_tool_calls=0,  # one model call each
        )
        for text in ("What is 2 + 2?", "Hello there")
    ]
    assert first.usage is not None and later.usage is not None
    cached = first.usage.input_tokens_details.cached_tokens
    # The two share their system message and user header, and nothing after it.
    assert cached == later.usage.input_tokens_details.cached_tokens
    assert cached > 100
